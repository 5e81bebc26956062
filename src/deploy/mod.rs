//! What deploying Tollgate to people's machines needs from it: a configuration profile for
//! MDM ([`mobileconfig`]), the environment every client family reads ([`client_env`]) and a
//! PAC file ([`pac`]).

pub mod client_env;
pub mod mobileconfig;
pub mod pac;
