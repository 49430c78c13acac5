//! Direct messages: [`Hub::send_to`] and the token protocol's `send`, to one connection of this
//! node, or (on the Redis engine) of any node.

use serde_json::value::RawValue;

use crate::error::HubError;
use crate::hub::Hub;
use crate::wire;

impl Hub {
    /// Sends `data` (JSON) to one connection as a `direct` message (`from` is null: the server).
    /// On the Redis engine, the connection may be on any node.
    pub async fn send_to(&self, connection_id: &str, data: &impl serde::Serialize) -> Result<(), HubError> {
        let json = serde_json::value::to_raw_value(data).map_err(|e| HubError::BadRequest(e.to_string()))?;
        self.send_raw(connection_id, &json, None).await
    }

    pub(crate) async fn send_raw(&self, to: &str, data: &RawValue, from: Option<&str>) -> Result<(), HubError> {
        let text = serde_json::to_string(&wire::Direct { kind: "direct", from, data }).expect("serializable");
        // Only a connection that speaks the token protocol to this hub: another route's client (an
        // echo, a demo, another hub's) would get JSON it never asked for.
        match self.connection(to) {
            Some(conn) => conn.send_text(text).map_err(|_| HubError::NotFound(to.to_owned())),
            #[cfg(feature = "redis")]
            None if self.redis().is_some() => {
                let engine = self.redis().expect("checked");
                self.redis_send(engine, to, text).await
            }
            None => Err(HubError::NotFound(to.to_owned())),
        }
    }
}
