//! Tollgate: an explicit HTTPS forward proxy that makes AI coding agents' traffic to LLM APIs
//! governable.
//!
//! A request's life:
//!
//! 1. **CONNECT** — a client (`HTTPS_PROXY`) asks for a tunnel to `host:port`.
//! 2. **Identity** — `Proxy-Authorization` names the user: a token or an OIDC JWT ([`identity`]).
//! 3. **Decide** — the policy ([`policy`]) looks the host up in the provider catalog
//!    ([`providers`]): LLM API hosts are intercepted, others tunneled byte for byte or denied;
//!    the user's access profile may refuse the provider outright.
//! 4. **Intercept** — TLS is terminated with a per-host leaf from Tollgate's CA ([`tls`]).
//! 5. **Pipeline** ([`proxy::pipeline`], the stages in order) — each request inside the tunnel
//!    must target the tunnel's host; upgrades are refused, hop-by-hop headers stripped; the body
//!    is masked ([`mask`]); the request is placed (region, jurisdiction) and checked against the
//!    profile's providers, regions and models; a rule of approvals.yaml may hold it for a person
//!    (`approval`).
//! 6. **Forward** — through one pooled, verified upstream client whose every TCP connection comes
//!    from Tollgate's dialer (`--connect-to`, internal-address rule, timeouts).
//! 7. **Stream back** — response bodies pass frame by frame, never buffered whole, placeholders
//!    restored on the way.
//! 8. **Record** — every exchange, refused and failed ones included, goes to the hash-chained
//!    audit store ([`record`]) when its body ends, however it ends.
//!
//! Every refusal is answered in the provider's own error shape with `x-tollgate-*` headers.
//! [`explain`] runs the same stages for one hypothetical request, without sending it.
//! Operators reach a running proxy through its admin API (`admin`: health, `metrics`, approvals,
//! policy `reload`).

#![forbid(unsafe_code)]

mod admin;
mod approval;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod explain;
pub mod identity;
pub mod mask;
mod metrics;
mod net;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod record;
mod reload;
mod source;
pub mod tls;
