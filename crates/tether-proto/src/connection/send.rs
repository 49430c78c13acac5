//! The outbound path of a [`Connection`]: messages (compressed when permessage-deflate says so),
//! prepared frames, pings and pongs, and our Close frame, all encoded into the output buffer
//! (masked when we are the client).

use super::prepared::{PreparedFrame, PreparedOutput};
use super::{Connection, Message, Role};
use crate::close::{encode_close_payload, CloseCode};
use crate::deflate::context::{self, SendContext};
use crate::error::SendError;
use crate::frame::{encode_frame, OpCode, MAX_HEADER_LEN};

/// The output buffer's first allocation after it was taken: a batch of small frames fits.
const OUTPUT_CHUNK: usize = 512;
impl Connection {
    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    /// Queues a message.
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_text(text),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        if let Some(send) = self.compressing(payload) {
            let mut scratch = context::take_scratch();
            send.compress(payload, &mut scratch);
            self.write_frame(opcode, true, &scratch);
            context::return_scratch(scratch);
            return Ok(());
        }
        self.write_frame(opcode, false, payload);
        Ok(())
    }

    /// Sends a frame prepared once for many connections, under the rules of [`Connection::send`]:
    /// refused once our Close frame is queued. A server gets the shared bytes back to write after
    /// its current output, without a copy; a client masks them into its output.
    pub fn send_prepared(&mut self, frame: PreparedFrame) -> Result<PreparedOutput, SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        let (opcode, payload) = frame.opcode_and_payload();
        let shared_settings = self.config.deflate.shared_settings();
        match (self.role, self.compressing(payload)) {
            (Role::Server, None) => Ok(PreparedOutput::Shared(frame.frame)),
            (Role::Server, Some(send)) => {
                match frame.compressed(shared_settings, send.settings()) {
                    Some(shared) => {
                        send.sent_standalone(payload);
                        Ok(PreparedOutput::Shared(shared))
                    }
                    None => {
                        // The shared copy uses a larger window than this peer agreed to: compress it
                        // again for this one.
                        self.send_data(opcode, payload)?;
                        Ok(PreparedOutput::Queued)
                    }
                }
            }
            (Role::Client, _) => {
                self.send_data(opcode, payload)?;
                Ok(PreparedOutput::Queued)
            }
        }
    }

    /// Our compressing side, if `payload` is to go compressed: permessage-deflate is in use, we
    /// can compress for this peer, and the payload is not shorter than `min_message_size`.
    fn compressing(&mut self, payload: &[u8]) -> Option<&mut SendContext> {
        let min_size = self.config.deflate.min_message_size;
        self.deflate.as_mut()?.send.as_mut().filter(|_| payload.len() >= min_size)
    }

    /// Queues a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a heartbeat that expects no answer).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLarge);
        }
        self.write_frame(opcode, false, payload);
        Ok(())
    }

    /// Starts the closing handshake. The reason is cut to fit a control frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        self.write_close(code, reason);
        Ok(())
    }

    pub(super) fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        encode_close_payload(code, reason, &mut payload);
        self.write_frame(OpCode::Close, false, &payload);
        self.sent_close = true;
    }

    pub(super) fn write_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        let mask = self.masks.as_mut().map(|masks| masks.next_key());
        if self.out.capacity() == 0 {
            // The first frame since the output was taken: room for a batch of small frames at once,
            // rather than growing by doubling from the size of one (five reallocations for 16).
            self.out.reserve(OUTPUT_CHUNK.max(payload.len() + MAX_HEADER_LEN));
        }
        encode_frame(&mut self.out, opcode, true, rsv1, payload, mask);
    }
}
