//! Where the dashboard lives: the one path its other parts need to know of each other (the
//! tables and the sampler leave the live socket's own connections out).

/// The live socket's path.
pub const SOCKET_PATH: &str = "/admin/ws";
