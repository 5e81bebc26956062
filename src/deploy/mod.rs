//! What deploying Tollgate to people's machines needs from it: a configuration profile for
//! MDM ([`mobileconfig`]), the environment every client family reads ([`client_env`]), a
//! PAC file ([`pac`]), and the checks that say whether a machine is set up ([`doctor`]).

pub mod client_env;
pub mod doctor;
pub mod mobileconfig;
pub mod pac;
