//! Settings of `tether serve`: one struct that is both the command line and the TOML file.
//!
//! Every field is optional in both places. A flag given on the command line wins over the file
//! (`--config tether.toml`), and the file wins over the built-in default. The defaults are in
//! [`ServeSettings::resolve`] and in each flag's help.
//!
//! Every numeric setting has a range ([`ranges::RANGES`], the same table `docs/limits.md` documents). A
//! value outside it, or one that is not a number of the right kind, is refused at startup with one
//! line naming the setting, the value and the range: a server that starts is a server whose
//! settings make sense (no ping storm from `--ping-interval 0.001`, no `Instant + Duration`
//! overflow from a huge timeout, no server that locks everyone out with `--max-connections 0`).
//!
//! One concern per file: [`fields`] is the struct itself (flags, keys, help) and how the command
//! line goes over the file; [`ranges`] the table of ranges and the checks; [`file`] reading the
//! TOML file and its one-line errors; [`resolve`] the defaults and what the server is given;
//! [`auth`] the checks and defaults of the auth settings; [`namespaces`] the `[namespaces.NAME]`
//! tables; [`admin`] the admin dashboard's password; [`engine`] the `[engine]` table (Redis).

mod admin;
mod auth;
mod engine;
mod fields;
mod file;
mod namespaces;
mod ranges;
mod resolve;

pub use auth::AuthSettings;
pub use engine::{default_node_name, Engine};
pub use fields::{LogFormat, ServeSettings};
pub use ranges::range_of;
pub use resolve::{route_limits, Resolved, QUESTION_LIMIT};
