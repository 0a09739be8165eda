//! HL7 v2 pieces MLLP needs: the header of a received message, the acknowledgement to send
//! back, and the acknowledgement a sender receives.
//!
//! Everything here works on raw bytes, before character decoding: the header segment is ASCII
//! in every character set MLLP can carry.
//!
//! * [`Header`] reads MSH (or BHS/FHS for a batch) without copying: separators, fields,
//!   components, and the fields an acknowledgement needs.
//! * [`AckBuilder`] writes the ACK of a received message into a reusable buffer, in original
//!   mode (AA/AE/AR) or enhanced mode (CA/CE/CR, sent according to MSH-15).
//!   [`build_nak_unparseable`] answers input whose header cannot be read.
//! * [`Ack`] reads a reply: MSA-1/2/3, ERR texts, or an MLLP release 2 commit block
//!   ([`COMMIT_ACK`], [`COMMIT_NAK`]). [`ack_control_id`] finds MSA-2 without copying, for
//!   matching replies to sent messages.
//! * [`next_control_id`] and [`write_timestamp`] make the MSH-10 and MSH-7 of a generated
//!   message.
//! * [`ReplyKind`] names which of the two answers a message: an HL7 acknowledgement or an MLLP
//!   release 2 commit block, for senders, listeners and received replies alike.
//! * [`split_messages`] cuts a file into messages (batches whole or split), and
//!   [`normalise_endings`] turns LF and CRLF segment endings into CR: what a sender of files
//!   needs before it sends anything.

mod ack;
mod control_id;
mod escape;
mod header;
mod reply;
mod split;

pub use ack::{
    build_nak_unparseable, code_description, AckBuilder, AckCode, AckMode, Disposition, COMMIT_ACK,
    COMMIT_NAK,
};
pub use control_id::{next_control_id, write_timestamp, ControlId};
pub use escape::{escape_into, unescape};
pub use header::{salvage_control_id, Header, Separators};
pub(crate) use reply::Reply;
pub use reply::{ack_control_id, Ack, ReplyKind};
pub use split::{normalise_endings, split_messages, Batches};
