//! The operator's tools beyond the pipeline itself: replicating what exists already
//! ([`backfill`]), the drift report ([`drift`]), and the deployed functions' recent
//! metrics for `status` ([`recent`]).

pub mod backfill;
pub mod drift;
pub mod recent;
