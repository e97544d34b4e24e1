//! The queues between the stages: the job message ([`job`]), sends in batches
//! ([`batch`]), a queue's backlog ([`backlog`]), a message's lease while its job runs
//! ([`lease`]), the failed queue ([`parking`]) and the operator's view of it
//! ([`dlq`]), and the queues as the templates make them ([`setup`]). What runs on
//! them lives above: [`crate::retry`], [`crate::worker`].

pub mod backlog;
pub mod batch;
pub mod dlq;
pub mod job;
pub mod lease;
pub mod parking;
pub mod setup;
