//! Operations run by an operator, not by requests: `adapter-registry gc` ([`gc`]) and
//! `adapter-registry fsck` ([`fsck`]). Middle floor, above `jobs` (gc also clears what jobs
//! and uploads left behind).

pub mod fsck;
pub mod gc;
