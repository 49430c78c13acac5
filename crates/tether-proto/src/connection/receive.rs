//! The inbound path of a [`Connection`]: bytes from the transport become frames, frames are checked
//! against RFC 6455's rules (masking by role, reserved bits, fragmentation, control frames),
//! messages are reassembled, inflated and UTF-8 checked within their limits, and pings and Close
//! frames are answered. A broken rule fails the connection with its close code queued.

use bytes::{Bytes, BytesMut};

use super::{Connection, CurrentFrame, Event, Incoming, Message, Role};
use crate::close::parse_close_payload;
use crate::error::ProtocolError;
use crate::frame::{FrameEvent, FrameHeader, OpCode};
use crate::utf8::{Utf8Bytes, Utf8Validator};

impl Connection {
    /// Processes received bytes, consuming what it uses, and returns the next event.
    ///
    /// Call it again until it returns `Ok(None)` (more bytes needed). On `Err` the connection has
    /// failed: a Close frame with [`ProtocolError::close_code`] is queued; write it and close.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        if self.received_close || self.failed {
            // RFC 6455 §5.5.1: nothing the peer sends after its Close frame is read.
            input.clear();
            return Ok(None);
        }
        loop {
            let event = match self.decoder.decode(input) {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(error) => return Err(self.fail(error)),
            };
            let step = match event {
                FrameEvent::Header(header) => self.on_header(&header).map(|()| None),
                FrameEvent::Payload { data, last } => self.on_payload(data, last),
            };
            match step {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if !self.sent_close {
            self.write_close(error.close_code(), "");
        }
        self.failed = true;
        self.incoming = None;
        error
    }

    fn on_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.rsv2 || header.rsv3 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        if header.opcode.is_control() {
            if header.rsv1 {
                return Err(ProtocolError::ReservedBitsSet);
            }
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLarge(header.payload_len));
            }
            self.control.clear();
            self.frame = CurrentFrame::Control(header.opcode);
            return Ok(());
        }
        let compressed = header.rsv1;
        if compressed && (self.deflate.is_none() || header.opcode == OpCode::Continuation) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        let max_message = self.config.max_message_size;
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge { limit: self.config.max_frame_size });
        }
        match header.opcode {
            OpCode::Continuation => {
                let incoming = self.incoming.as_ref().ok_or(ProtocolError::UnexpectedContinuation)?;
                if !incoming.compressed && incoming.plain.len() as u64 + header.payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { limit: max_message });
                }
            }
            _ => {
                if self.incoming.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if !compressed && header.payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { limit: max_message });
                }
                self.incoming = Some(Incoming {
                    text: header.opcode == OpCode::Text,
                    compressed,
                    plain: BytesMut::new(),
                    inflated: Vec::new(),
                    utf8: Utf8Validator::default(),
                });
            }
        }
        self.frame = CurrentFrame::Data { fin: header.fin };
        Ok(())
    }

    fn on_payload(&mut self, data: BytesMut, last: bool) -> Result<Option<Event>, ProtocolError> {
        match self.frame {
            CurrentFrame::Control(opcode) => {
                self.control.extend_from_slice(&data);
                if last {
                    self.on_control(opcode)
                } else {
                    Ok(None)
                }
            }
            CurrentFrame::Data { fin } => {
                self.on_data(data, last)?;
                if last && fin {
                    self.finish_message().map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn on_data(&mut self, data: BytesMut, last: bool) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let incoming = self.incoming.as_mut().expect("a data frame belongs to a message");
        if incoming.compressed {
            let deflate = self.deflate.as_mut().expect("compressed frames need deflate");
            let start = incoming.inflated.len();
            deflate.receive.decompress(&data, &mut incoming.inflated, limit)?;
            if incoming.text {
                incoming.utf8.feed(&incoming.inflated[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        } else {
            if incoming.text {
                incoming.utf8.feed(&data).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            // Zero-copy when the payload arrives in one piece: the first piece becomes the buffer.
            // Otherwise the rest of the frame is known (and already checked against the limits):
            // make room for all of it at once rather than growing by doubling.
            if incoming.plain.is_empty() && (last || self.decoder.remaining_payload() == 0) {
                incoming.plain = data;
            } else {
                if incoming.plain.is_empty() {
                    let rest = usize::try_from(self.decoder.remaining_payload()).unwrap_or(usize::MAX);
                    incoming.plain.reserve(data.len().saturating_add(rest).min(self.config.max_message_size));
                }
                incoming.plain.unsplit(data);
            }
        }
        Ok(())
    }

    fn finish_message(&mut self) -> Result<Event, ProtocolError> {
        let limit = self.config.max_message_size;
        let mut incoming = self.incoming.take().expect("a final frame ends a message");
        let payload = if incoming.compressed {
            let deflate = self.deflate.as_mut().expect("compressed frames need deflate");
            let start = incoming.inflated.len();
            deflate.receive.finish_message(&mut incoming.inflated, limit)?;
            if incoming.text {
                incoming.utf8.feed(&incoming.inflated[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Bytes::from(incoming.inflated)
        } else {
            incoming.plain.freeze()
        };
        let message = if incoming.text {
            incoming.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Ok(Event::Message(message))
    }

    fn on_control(&mut self, opcode: OpCode) -> Result<Option<Event>, ProtocolError> {
        let payload = Bytes::copy_from_slice(&self.control);
        match opcode {
            OpCode::Ping => {
                if !self.sent_close {
                    self.write_frame(OpCode::Pong, false, &payload);
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload))),
            OpCode::Close => {
                let frame = parse_close_payload(&payload)?;
                self.received_close = true;
                self.incoming = None;
                if !self.sent_close {
                    // Echo the status code (RFC 6455 §5.5.1); an empty Close is answered empty.
                    match &frame {
                        Some(frame) => self.write_close(frame.code, ""),
                        None => {
                            self.write_frame(OpCode::Close, false, &[]);
                            self.sent_close = true;
                        }
                    }
                }
                Ok(Some(Event::Close(frame)))
            }
            _ => unreachable!("only control opcodes reach on_control"),
        }
    }
}
