//! Decoding what the peer sent: frames that answer nothing before a write, the reply after it.

use std::time::Instant;

use log::warn;

use super::{Exchange, State, MAX_STALE_FRAMES};
use crate::codec::Event;
use crate::error::FrameError;
use crate::sender::reply::{discard, judge, Id};

impl Exchange<'_> {
    /// Decodes what is buffered while discarding stale frames.
    pub(super) fn decode_stale(&mut self, now: Instant) {
        let State::Drain { mut frames, bytes } = self.state else {
            return;
        };
        loop {
            let link = &mut *self.link;
            let d = link.decoder.decode(&link.buf);
            let event = d.event;
            if discard(link, &event) {
                frames += 1;
            }
            link.buf.drain(..d.consumed);
            if frames >= MAX_STALE_FRAMES {
                warn!(
                    "{} keeps sending frames that answer no message; connecting again",
                    self.link.peer()
                );
                return self.reconnect(now);
            }
            if event == Event::NeedMore {
                break;
            }
        }
        self.state = State::Drain { frames, bytes };
    }

    /// Decodes what is buffered while awaiting the reply.
    pub(super) fn decode_reply(&mut self, now: Instant) {
        loop {
            let link = &mut *self.link;
            let d = link.decoder.decode(&link.buf);
            match d.event {
                Event::Frame(range) => {
                    let ack = judge(link, range, self.correlate.then_some(self.id));
                    link.buf.drain(..d.consumed);
                    if let Some(ack) = ack {
                        return self.on_ack(ack, now);
                    }
                }
                Event::Oversized { .. } => {
                    link.buf.drain(..d.consumed);
                    return self.reply_oversized(now);
                }
                Event::NeedMore => {
                    link.buf.drain(..d.consumed);
                    if link.decoder.in_oversized_frame() {
                        return self.reply_oversized(now);
                    }
                    return;
                }
                _ => {
                    link.buf.drain(..d.consumed);
                }
            }
        }
    }

    pub(super) fn reply_oversized(&mut self, now: Instant) {
        let max = self.link.framing.max_size();
        warn!(
            "a reply from {} to message {} is larger than {max} bytes",
            self.link.peer(),
            Id(self.id)
        );
        self.fail(FrameError::Oversized { max }.into(), true, now);
    }
}
