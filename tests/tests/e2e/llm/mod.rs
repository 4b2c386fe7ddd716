//! LLM APIs through Envoy: token, dollar and concurrency limits charged with the usage the
//! upstream reported (`limits`), every recorded provider response (`fixtures`), and the
//! official provider SDKs, unmodified (`sdk`).

mod fixtures;
mod limits;
mod sdk;
