/*
 * mllp.h: the C API of the mllp library (blocking MLLP for HL7 v2).
 *
 * Generated from src/ffi by cbindgen; do not edit. Regenerate with .ci/header-check --fix.
 *
 * Conventions:
 * - Functions that can fail return an mllp_result. Codes below 100 are not errors; the
 *   numbers never change meaning. mllp_result_str() describes any code.
 * - Every pointer argument is checked: NULL gives MLLP_NULL_ARGUMENT. An output buffer may be
 *   NULL only with a capacity of 0 (to ask for the size needed).
 * - Every buffer is passed with its length or capacity. The library never reads past a length
 *   nor writes past a capacity; when a result does not fit, MLLP_BUFFER_TOO_SMALL is returned
 *   and the size needed is stored through the length out-pointer.
 * - Input strings are NUL-terminated UTF-8. Returned strings are static (never freed) or
 *   copied into caller buffers.
 * - Handles are opaque: created by a _new function, released by the matching _free function;
 *   _free(NULL) does nothing. Each handle documents its thread-safety and keeps the text of its
 *   last error (its _last_error function).
 * - A Rust panic never crosses into C: it becomes MLLP_PANIC. Free the handle involved.
 */

#ifndef MLLP_H
#define MLLP_H

#include <stddef.h>
#include <stdint.h>

/**
 * The most bytes one `mllp_decoder_feed` call is guaranteed to accept, when the previous
 * `mllp_decoder_next` returned `MLLP_NEED_MORE`.
 */
#define MLLP_DECODER_FEED_MAX 65536

/**
 * A start sequence inside a frame discards the partial frame and starts a new one (the
 * default).
 */
#define MLLP_START_IN_FRAME_RESTART 0

/**
 * A start sequence inside a frame is ordinary payload.
 */
#define MLLP_START_IN_FRAME_IGNORE 1

/**
 * A frame decoder: bytes in, frames out. Create with `mllp_decoder_new`, free with
 * `mllp_decoder_free`.
 *
 * Thread safety: not thread-safe. Use it from one thread at a time (it may move between
 * threads); a frame it hands out must not be used after the next call on it.
 */
typedef struct mllp_decoder mllp_decoder;

/**
 * A result code returned by every function of this API that can fail.
 *
 * Codes below 100 are not errors; everything from 100 on is. The numbers are fixed forever:
 * a code never changes meaning and a retired code is never reused. `mllp_result_str` names
 * each one.
 */
typedef uint32_t mllp_result;

/**
 * What the receiver decided about a message (listener callbacks return one too).
 */
typedef uint32_t mllp_disposition;

/**
 * Framing options: which bytes open and close a frame, and the decoder's limits.
 *
 * Always fill it with `mllp_framing_init` first, then change the fields you need; fields may
 * be added at the end in a later major version. A plain struct owned by the caller: the
 * library copies it and keeps no pointer to it.
 */
typedef struct mllp_framing {
  /**
   * The start sequence; the first `start_len` bytes are used. Default `0x0B`.
   */
  uint8_t start[8];
  /**
   * Bytes in the start sequence, 1 to 8. Default 1.
   */
  size_t start_len;
  /**
   * The end sequence; the first `end_len` bytes are used. It must begin with a byte other
   * than the start sequence's first byte. Default `0x1C 0x0D`.
   */
  uint8_t end[8];
  /**
   * Bytes in the end sequence, 1 to 8. Default 2.
   */
  size_t end_len;
  /**
   * The largest payload accepted, in bytes (at least 1). Larger frames are skipped and
   * reported as `MLLP_FRAME_OVERSIZED`. Default 16 MiB.
   */
  size_t max_message_size;
  /**
   * Non-zero: a frame also ends at the first byte of the end sequence when the rest of the
   * sequence does not follow (for peers that send `0x1C` without `0x0D`). Default 0.
   */
  int lenient;
  /**
   * What a start sequence inside a frame means: `MLLP_START_IN_FRAME_RESTART` (default) or
   * `MLLP_START_IN_FRAME_IGNORE`.
   */
  uint32_t start_in_frame;
} mllp_framing;

/**
 * Counters of one decoder since it was created.
 */
typedef struct mllp_decoder_stats {
  /**
   * Frames handed out.
   */
  uint64_t frames;
  /**
   * Bytes dropped outside any frame (junk before a start sequence).
   */
  uint64_t skipped_bytes;
  /**
   * Partial frames dropped because a start sequence arrived inside them.
   */
  uint64_t discarded_frames;
  /**
   * Frames larger than the maximum message size (skipped).
   */
  uint64_t oversized_frames;
  /**
   * Frames cut short by the end of the stream (`mllp_decoder_finish`).
   */
  uint64_t truncated_frames;
} mllp_decoder_stats;

/**
 * A log level. The numbers match the `log` crate's and never change.
 */
typedef uint32_t mllp_log_level;

/**
 * Receives one log record.
 *
 * `userdata` is the pointer given to `mllp_set_log_callback`; `level` one of `MLLP_LOG_*`
 * (never `MLLP_LOG_OFF`); `target` the module that logged (e.g. `"mllp::codec"`) and `message`
 * the text, both NUL-terminated UTF-8 borrowed for the duration of the call only.
 *
 * It is called on whichever thread logs, possibly on several threads at once, so it must be
 * thread-safe. It must not call `mllp_set_log_callback` (that call would return
 * `MLLP_INVALID_STATE`); records logged by library functions it calls are dropped.
 */
typedef void (*mllp_log_callback)(void *userdata,
                                  mllp_log_level level,
                                  const char *target,
                                  const char *message);

/**
 * Accepted: the acknowledgement carries AA (original mode) or CA (enhanced mode).
 */
#define MLLP_DISPOSITION_ACCEPT 0

/**
 * Not processed because of an error; the sender may retry: AE or CE.
 */
#define MLLP_DISPOSITION_ERROR 1

/**
 * Rejected; retrying will not help: AR or CR.
 */
#define MLLP_DISPOSITION_REJECT 2

/**
 * No records (as a level passed to `mllp_set_log_callback`).
 */
#define MLLP_LOG_OFF 0

/**
 * Errors: something failed and the library could not recover on its own.
 */
#define MLLP_LOG_ERROR 1

/**
 * Warnings: something unexpected the library worked around (an unknown MSH-18, a peer that
 * closed mid-frame).
 */
#define MLLP_LOG_WARN 2

/**
 * Informational: connections opened and closed, listeners started and stopped.
 */
#define MLLP_LOG_INFO 3

/**
 * Debug: connection events, sizes, retries.
 */
#define MLLP_LOG_DEBUG 4

/**
 * Trace: framing decisions. Message bodies are never logged at any level.
 */
#define MLLP_LOG_TRACE 5

/**
 * Success.
 */
#define MLLP_OK 0

/**
 * Not an error: the decoder has no complete frame; feed it more bytes.
 */
#define MLLP_NEED_MORE 1

/**
 * Not an error: no acknowledgement is to be sent (enhanced mode, and the message's MSH-15
 * asks for none in this case). The output is empty.
 */
#define MLLP_NO_ACK 2

/**
 * Not an error: the message's header could not be read, so the output holds a reject (AR)
 * with an empty MSA-2 and the reason in MSA-3 and ERR, instead of the acknowledgement asked
 * for.
 */
#define MLLP_NAK_UNPARSEABLE 3

/**
 * A pointer argument was NULL.
 */
#define MLLP_NULL_ARGUMENT 100

/**
 * An argument is out of range or malformed (an unknown enumeration value, a string that is
 * not UTF-8).
 */
#define MLLP_INVALID_ARGUMENT 101

/**
 * The output buffer is too small. The size needed has been stored through the length
 * out-pointer; call again with a buffer at least that large.
 */
#define MLLP_BUFFER_TOO_SMALL 102

/**
 * The call is not allowed in the handle's current state (the function's documentation says
 * which order is expected).
 */
#define MLLP_INVALID_STATE 103

/**
 * A bug in this library: a Rust panic was caught at the API boundary. Free the handle
 * involved and report the problem.
 */
#define MLLP_PANIC 104

/**
 * A setting is invalid (framing bytes, sizes, a character set label, ...). Fix the options;
 * retrying will not help.
 */
#define MLLP_CONFIG 105

/**
 * The decoder holds as many unprocessed bytes as it may: take frames with
 * `mllp_decoder_next` until it returns `MLLP_NEED_MORE` before feeding more. Nothing was
 * copied.
 */
#define MLLP_DECODER_FULL 106

/**
 * The stream ended inside a frame.
 */
#define MLLP_FRAME_TRUNCATED 200

/**
 * A frame exceeded the maximum message size. It was skipped entirely; the stream is still in
 * step.
 */
#define MLLP_FRAME_OVERSIZED 201

/**
 * A payload to be sent contains the frame's end sequence; the peer would split it.
 */
#define MLLP_FRAME_PAYLOAD_CONTAINS_END 202

/**
 * A start sequence arrived inside a frame and the framing treats that as an error.
 */
#define MLLP_FRAME_START_IN_FRAME 203

/**
 * The HL7 header (MSH, BHS or FHS) is missing or malformed, or a required field is empty.
 */
#define MLLP_HEADER 300

/**
 * A reply is neither an HL7 acknowledgement (no MSA segment) nor an MLLP commit block.
 */
#define MLLP_NOT_AN_ACK 301

/**
 * Text could not be decoded or encoded in the character set, or the character set is
 * unknown or unusable.
 */
#define MLLP_CHARSET 400

/**
 * An I/O operation failed (resolving, connecting, reading, writing, accepting).
 */
#define MLLP_IO 500

/**
 * A deadline passed (connect, write, ACK, frame or idle timeout).
 */
#define MLLP_TIMEOUT 501

/**
 * The peer closed the connection, or the object was shut down.
 */
#define MLLP_CLOSED 502

/**
 * A TLS handshake or TLS setting failed: check certificates, keys and host names.
 */
#define MLLP_TLS 503

/**
 * A message could not be delivered and certainly did not reach the peer's application:
 * sending it again cannot create a duplicate.
 */
#define MLLP_NOT_DELIVERED 600

/**
 * A message was written but no valid acknowledgement came back: the peer may or may not have
 * it. Sending it again may create a duplicate.
 */
#define MLLP_UNCONFIRMED 601

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library's name and version as a static NUL-terminated string, e.g. `"mllp/0.1.0"`.
 *
 * Never NULL; do not free it. Thread-safe.
 */
const char *mllp_version(void);

/**
 * Builds the acknowledgement (ACK/NAK) of a received HL7 message.
 *
 * `msg`/`msg_len` is the message (a frame's payload). `disposition` is one of
 * `MLLP_DISPOSITION_*`. `text` is NULL or a NUL-terminated UTF-8 string for MSA-3 and, on an
 * error or reject, the ERR segment; it is escaped with the message's escape character. The
 * acknowledgement mirrors the message's separators, sender/receiver, trigger, processing ID
 * and version, echoes its control ID in MSA-2, gets a fresh control ID of its own, and is
 * encoded in the character set the message declares in MSH-18 (UTF-8 when none or unknown).
 * Segments end with CR. It is not framed: use `mllp_encode_frame` to send it.
 *
 * `out` (capacity `out_cap`) may be NULL only when `out_cap` is 0. Returns:
 * * `MLLP_OK`: `*out_len` bytes were written.
 * * `MLLP_NO_ACK` (not an error): the message asks, in enhanced mode (MSH-15), for no
 *   acknowledgement in this case; `*out_len` is 0.
 * * `MLLP_NAK_UNPARSEABLE` (not an error): the message's header could not be read, so `out`
 *   holds a reject (AR, empty MSA-2, the reason in MSA-3 and ERR) whatever `disposition`
 *   and `text` said. Send it back all the same.
 * * `MLLP_BUFFER_TOO_SMALL`: nothing written; `*out_len` is the size needed. The size does not
 *   depend on the time or the control ID, so a second call with that capacity succeeds.
 * * `MLLP_CHARSET`: the text cannot be represented in the message's character set.
 * * `MLLP_INVALID_ARGUMENT` (unknown disposition, text not UTF-8), `MLLP_NULL_ARGUMENT`.
 *
 * Thread-safe.
 */
mllp_result mllp_build_ack(const uint8_t *msg,
                           size_t msg_len,
                           mllp_disposition disposition,
                           const char *text,
                           uint8_t *out,
                           size_t out_cap,
                           size_t *out_len);

/**
 * Creates a decoder.
 *
 * `framing` may be NULL for the defaults; it is copied. On success `*out` receives the new
 * handle, to be freed with `mllp_decoder_free`; on failure `*out` is set to NULL (when `out`
 * is not NULL).
 *
 * Errors: `MLLP_CONFIG` for invalid framing options, `MLLP_NULL_ARGUMENT` when `out` is NULL.
 */
mllp_result mllp_decoder_new(const struct mllp_framing *framing,
                             struct mllp_decoder **out);

/**
 * Copies `len` bytes into the decoder's buffer.
 *
 * `data` must not be NULL (even when `len` is 0). The bytes are copied; `data` may be reused
 * as soon as the call returns. Feeding invalidates a frame handed out earlier.
 *
 * The buffer is bounded by the maximum message size: after `mllp_decoder_next` has returned
 * `MLLP_NEED_MORE`, a feed of up to `MLLP_DECODER_FEED_MAX` bytes always succeeds. Larger
 * feeds succeed while the bound allows; beyond it the result is `MLLP_DECODER_FULL` and
 * nothing is copied.
 */
mllp_result mllp_decoder_feed(struct mllp_decoder *decoder,
                              const uint8_t *data,
                              size_t len);

/**
 * Takes the next complete frame from the bytes fed so far.
 *
 * Returns:
 * * `MLLP_OK`: `*frame` and `*len` give the frame's payload (without the framing bytes). It
 *   is borrowed from the decoder and valid until the next call on this decoder (any call,
 *   `mllp_decoder_free` included); copy it to keep it.
 * * `MLLP_NEED_MORE`: no complete frame; feed more bytes. `*frame` is NULL, `*len` 0.
 * * `MLLP_FRAME_OVERSIZED`: a frame exceeded the maximum message size and was skipped; the
 *   decoder is still in step, call again for the next frame. `*frame`/`*len` give the first
 *   bytes of the skipped payload (up to 1024, borrowed like a frame), enough to read the HL7
 *   header and send a negative acknowledgement.
 *
 * Bytes outside any frame and partial frames cut off by a new start sequence are dropped
 * silently (see `mllp_decoder_get_stats`).
 */
mllp_result mllp_decoder_next(struct mllp_decoder *decoder,
                              const uint8_t **frame,
                              size_t *len);

/**
 * Tells the decoder the stream has ended, and reports what the bytes left over amount to.
 *
 * Call it after `mllp_decoder_next` has returned `MLLP_NEED_MORE` (else
 * `MLLP_INVALID_STATE`). Returns:
 * * `MLLP_OK` with `*frame` NULL and `*len` 0: the stream ended cleanly between frames;
 * * `MLLP_OK` with a frame (lenient framing only: the end sequence was cut short by the end
 *   of the stream), borrowed as from `mllp_decoder_next`;
 * * `MLLP_FRAME_TRUNCATED`: the stream ended inside a frame, which is dropped;
 * * `MLLP_FRAME_OVERSIZED`: as from `mllp_decoder_next`.
 *
 * Afterwards the decoder is empty and ready for a new stream (a new connection).
 */
mllp_result mllp_decoder_finish(struct mllp_decoder *decoder,
                                const uint8_t **frame,
                                size_t *len);

/**
 * Copies the decoder's counters into `*stats`.
 */
mllp_result mllp_decoder_get_stats(const struct mllp_decoder *decoder,
                                   struct mllp_decoder_stats *stats);

/**
 * Copies the text of the decoder's last error into `buf`, NUL-terminated.
 *
 * `*needed` receives the size the whole text needs, terminator included (1 when no call has
 * failed yet). `buf` may be NULL when `cap` is 0, to ask for the size. When `cap` is too
 * small, `buf` receives as much as fits (NUL-terminated when `cap` > 0) and the result is
 * `MLLP_BUFFER_TOO_SMALL`. Calls that fail set the text; calls that succeed leave it as it
 * was.
 */
mllp_result mllp_decoder_last_error(const struct mllp_decoder *decoder,
                                    char *buf,
                                    size_t cap,
                                    size_t *needed);

/**
 * Frees a decoder. NULL is allowed and does nothing. Frames handed out by it become invalid.
 */
void mllp_decoder_free(struct mllp_decoder *decoder);

/**
 * Fills `*framing` with the defaults: start `0x0B`, end `0x1C 0x0D`, 16 MiB maximum, strict
 * end, restart on a start sequence inside a frame.
 *
 * Returns `MLLP_OK`, or `MLLP_NULL_ARGUMENT` when `framing` is NULL. Thread-safe.
 */
mllp_result mllp_framing_init(struct mllp_framing *framing);

/**
 * Frames one payload: writes start sequence + payload + end sequence into `out`.
 *
 * `framing` may be NULL for the defaults. `payload` must not be NULL (even when
 * `payload_len` is 0). `out` (capacity `out_cap`) may be NULL only when `out_cap` is 0, and
 * must not overlap the payload. On `MLLP_OK`, `*out_len` is the frame's length.
 *
 * Errors: `MLLP_BUFFER_TOO_SMALL` with the size needed in `*out_len` (nothing written);
 * `MLLP_FRAME_PAYLOAD_CONTAINS_END` when the payload contains the end sequence (the peer would
 * split it); `MLLP_CONFIG` for invalid framing options; `MLLP_INVALID_ARGUMENT` when the
 * buffers overlap; `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_encode_frame(const struct mllp_framing *framing,
                              const uint8_t *payload,
                              size_t payload_len,
                              uint8_t *out,
                              size_t out_cap,
                              size_t *out_len);

/**
 * Sends the library's log records of `level` and more severe to `callback`.
 *
 * Without this call the library logs nothing. `callback` NULL (or `level` `MLLP_LOG_OFF`)
 * turns logging off. A later call replaces the callback and level; when it returns, the
 * previous callback is not running on any thread and will not be called again, so its
 * userdata may be freed. `userdata` is passed to every call of the callback; it must be
 * usable from any thread.
 *
 * Errors: `MLLP_INVALID_ARGUMENT` for an unknown level; `MLLP_INVALID_STATE` when called from
 * inside the callback, or when the process already has another logger for the Rust `log`
 * crate (a Rust program embedding this library that installed its own).
 *
 * Thread-safe. The level is process-wide.
 */
mllp_result mllp_set_log_callback(mllp_log_callback callback,
                                  void *userdata,
                                  mllp_log_level level);

/**
 * A static NUL-terminated description of a result code, e.g. `"invalid configuration"`.
 *
 * Never NULL, for any value (an unknown code gives `"unknown result code"`); do not free it.
 * Thread-safe.
 */
const char *mllp_result_str(mllp_result code);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* MLLP_H */
