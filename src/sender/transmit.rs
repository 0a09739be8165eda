//! What an [`Exchange`] asks its driver to do.

#[cfg(doc)]
use super::Exchange;

/// What an [`Exchange`] asks its driver to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit<'a> {
    /// Open a connection to the peer (within [`Exchange::poll_timeout`]), then call
    /// [`Exchange::handle_connected`] or [`Exchange::handle_error`].
    Connect,
    /// Read, without waiting, whatever the peer has already sent on the open connection and
    /// pass it to [`Exchange::handle_input`]; then call [`Exchange::handle_drained`] (or
    /// [`Exchange::handle_eof`] when the peer has closed the connection). None of it answers
    /// the message about to be written. Asked for only when it can matter (the connection has
    /// been idle, or the message's control ID repeats a recent one): in steady state an
    /// exchange goes from [`Exchange::new`] straight to [`Transmit::Write`].
    Drain,
    /// Write these bytes, in order, and report how many were written with
    /// [`Exchange::handle_written`]. Empty parts may be skipped. When the last byte is written,
    /// flush the stream.
    Write([&'a [u8]; 3]),
    /// Wait for bytes from the peer until [`Exchange::poll_timeout`] and pass them to
    /// [`Exchange::handle_input`] (or call [`Exchange::handle_eof`],
    /// [`Exchange::handle_error`] or [`Exchange::handle_timeout`]).
    Read,
    /// Close the connection. Nothing is to be reported back.
    Close,
    /// Nothing to do until [`Exchange::poll_timeout`]; then call [`Exchange::handle_timeout`].
    Wait,
    /// The exchange is over: take the result with [`Exchange::take_result`].
    Done,
}
