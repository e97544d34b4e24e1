//! The queues between the stages, and what runs on them: the job message ([`job`]),
//! sends in batches ([`batch`]), a queue's backlog ([`backlog`]), a message's lease
//! while its job runs ([`lease`]), the long-lived worker ([`worker`]), retries with
//! backoff ([`retry`]), the failed queue ([`parking`]) and the operator's view of it
//! ([`dlq`]), and the queues as the templates make them ([`setup`]).

pub mod backlog;
pub mod batch;
pub mod dlq;
pub mod job;
pub mod lease;
pub mod parking;
pub mod retry;
pub mod setup;
pub mod worker;
