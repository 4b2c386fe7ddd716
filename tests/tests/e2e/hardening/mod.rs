//! Hardening (docs/hardening.md): requests at and beyond the limits (`limits`), broken
//! upstreams and clients that hang up (`upstream`), reloads and restarts (`reload`,
//! `restart`), tollgate-store under attack and outage (`store`), and fuzzing: the corpora
//! replayed (`fuzz_corpus`) and a short mutation run (`fuzz_short`).

mod fuzz_corpus;
mod fuzz_short;
mod limits;
mod reload;
mod restart;
mod store;
mod upstream;
