//! Tollgate: an explicit HTTPS forward proxy that makes AI coding agents' traffic to LLM APIs
//! governable.
//!
//! A request's life:
//!
//! 1. **CONNECT** — a client (`HTTPS_PROXY`) asks for a tunnel to `host:port`.
//! 2. **Decide** — the policy ([`policy`]) looks the host up in the provider catalog
//!    ([`providers`]): LLM API hosts are intercepted, others tunneled byte for byte or denied.
//! 3. **Intercept** — TLS is terminated with a per-host leaf from Tollgate's CA ([`tls`]).
//! 4. **Pipeline** ([`proxy`]) — each request inside the tunnel must target the tunnel's host;
//!    upgrades are refused, hop-by-hop headers stripped; masking, approvals and recording join
//!    here, in this order.
//! 5. **Forward** — through one pooled, verified upstream client whose every TCP connection comes
//!    from Tollgate's dialer (`--connect-to`, internal-address rule, timeouts).
//! 6. **Stream back** — response bodies pass frame by frame, never buffered whole; the exchange
//!    is logged when its body ends, however it ends.
//!
//! Every refusal is answered in the provider's own error shape with `x-tollgate-*` headers.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod identity;
pub mod mask;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod record;
pub mod tls;
