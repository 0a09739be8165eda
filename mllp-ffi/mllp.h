/*
 * mllp.h: the C API of the mllp library (blocking MLLP for HL7 v2).
 *
 * Generated from mllp-ffi/src by cbindgen; do not edit. Regenerate with mllp-ffi/header-check --fix.
 *
 * ABI policy (MLLP_VERSION_MAJOR/MINOR/PATCH below; mllp_version() at run time):
 * - A patch version changes no declaration: fixes only.
 * - A minor version only adds: functions, constants (result codes, MLLP_*_STAT_* counters,
 *   enumeration values) and fields at the end of the structs the library fills and passes to
 *   you (mllp_message_info, which carries its size). It never removes or changes a function's
 *   parameters, a constant's value or a struct's layout. A program built against x.y runs with
 *   any library x.z with z >= y.
 * - Anything else is a new major version, and the shared library's SONAME (libmllp.so.<major>)
 *   changes with it, so a program never loads a library it was not built for.
 * - So that this holds, settings are builder handles with one setter per setting (there are no
 *   option structs), counters are read one by one by number, and every handle is opaque.
 *
 * Conventions:
 * - Functions that can fail return an mllp_result. Codes below 100 are not errors; the
 *   numbers never change meaning. mllp_result_str() describes any code.
 * - Every failing call sets the calling thread's last error text: mllp_last_error() copies it.
 * - Every pointer argument is checked: NULL gives MLLP_NULL_ARGUMENT. An output buffer may be
 *   NULL only with a capacity of 0 (to ask for the size needed). Pointers the library only
 *   reads are const.
 * - Every buffer is passed with its length or capacity. The library never reads past a length
 *   nor writes past a capacity; when a result does not fit, MLLP_BUFFER_TOO_SMALL is returned
 *   and the size needed is stored through the length out-pointer.
 * - Input strings are NUL-terminated UTF-8. Returned strings are static (never freed) or
 *   copied into caller buffers. Flags are int 0 or 1; any other value is MLLP_INVALID_ARGUMENT.
 * - Handles are opaque: created by a _new or _build function, released by the matching _free
 *   function; _free(NULL) does nothing. Each handle documents its thread-safety.
 * - A Rust panic never crosses into C: it becomes MLLP_PANIC. Free the handle involved.
 */

#ifndef MLLP_H
#define MLLP_H

#include <stddef.h>
#include <stdint.h>
/**
 * Whether the library filled `field` of the mllp_message_info `info` points to: always true
 * for the fields of the library's own version; check fields newer than the oldest library
 * version your program supports.
 */
#define MLLP_MESSAGE_INFO_HAS(info, field) \
  (offsetof(mllp_message_info, field) + sizeof((info)->field) <= (info)->size)

/**
 * The major version of the library this header belongs to. It changes with every change that
 * is not backward compatible (see the ABI policy at the top), together with the shared
 * library's SONAME (`libmllp.so.<major>`).
 */
#define MLLP_VERSION_MAJOR 0

/**
 * The minor version: new functions, constants and appended fields of library-filled structs.
 */
#define MLLP_VERSION_MINOR 1

/**
 * The patch version: fixes only, no change to the API or ABI.
 */
#define MLLP_VERSION_PATCH 0

/**
 * The most bytes one `mllp_decoder_feed` call is guaranteed to accept, when the previous
 * `mllp_decoder_next` returned `MLLP_NEED_MORE`.
 */
#define MLLP_DECODER_FEED_MAX 65536

/**
 * A start sequence inside a frame followed by `MSH`, `BHS` or `FHS` discards the partial
 * frame and starts a new one; any other start sequence is payload (the default).
 */
#define MLLP_START_IN_FRAME_RESTART 0

/**
 * A start sequence inside a frame is ordinary payload.
 */
#define MLLP_START_IN_FRAME_IGNORE 1

/**
 * The default stack size of the threads that call the callback: 128 KiB, as in Rust (the
 * callback's own stack use comes on top of the library's, which is small: buffers live on
 * the heap). Raise it with `mllp_listener_builder_set_stack_size` for a callback that keeps
 * large arrays on its stack.
 */
#define MLLP_LISTENER_DEFAULT_STACK_SIZE (128 * 1024)

/**
 * The smallest stack size `mllp_listener_builder_set_stack_size` accepts: 64 KiB.
 */
#define MLLP_LISTENER_MIN_STACK_SIZE (64 * 1024)

/**
 * The largest stack size `mllp_listener_builder_set_stack_size` accepts: 64 MiB (every
 * connection has a thread with a stack this size).
 */
#define MLLP_LISTENER_MAX_STACK_SIZE ((64 * 1024) * 1024)

/**
 * `mllp_outbox_builder_set_on_reject`: an AE or AR moves the message and the ACK's text to
 * the dead-letter area, and delivery goes on (the default).
 */
#define MLLP_OUTBOX_DEAD_LETTER 0

/**
 * `mllp_outbox_builder_set_on_reject`: an AE or AR stops delivery at that message until
 * `mllp_outbox_requeue_dead` or `mllp_outbox_resume`, for interfaces that need strict order.
 */
#define MLLP_OUTBOX_HOLD 1

/**
 * The dead letters of an outbox directory as they were when listed: made by
 * `mllp_outbox_dead_letters`, read by `mllp_dead_letters_*`, freed by `mllp_dead_letters_free`.
 * Thread safety: read-only, any number of threads at once.
 */
typedef struct mllp_dead_letters mllp_dead_letters;

/**
 * A frame decoder: bytes in, frames out. Create with `mllp_decoder_new`, free with
 * `mllp_decoder_free`.
 *
 * Thread safety: not thread-safe. Use it from one thread at a time (it may move between
 * threads); a frame it hands out must not be used after the next call on it.
 */
typedef struct mllp_decoder mllp_decoder;

/**
 * Framing settings: which bytes open and close a frame, and the decoder's limits.
 *
 * An opaque value made by `mllp_framing_new` (the defaults), changed by the
 * `mllp_framing_set_*` functions and freed by `mllp_framing_free`. Everything that takes one
 * (`mllp_encode_frame`, `mllp_decoder_new`, `mllp_sender_builder_set_framing`,
 * `mllp_listener_builder_set_framing`) copies it, so it may be changed or freed afterwards.
 * Opaque so that a later version can add settings (as new functions) without changing any
 * layout. Thread safety: one call at a time per value; reading it (passing it as `const`)
 * from several threads at once is fine.
 */
typedef struct mllp_framing mllp_framing;

/**
 * An MLLP listener bound to an address. Create with `mllp_listener_builder_build`, serve with
 * `mllp_listener_start` or `mllp_listener_run`, stop with `mllp_listener_stop`, free with
 * `mllp_listener_free`.
 *
 * Thread safety: every function except `mllp_listener_free` may be called from any thread,
 * concurrently (`mllp_listener_stop` in particular, also from a callback).
 * `mllp_listener_free` must be the last call, made once, outside the callback.
 */
typedef struct mllp_listener mllp_listener;

/**
 * Settings for listeners: made by `mllp_listener_builder_new` with the defaults, changed by
 * the `mllp_listener_builder_set_*` functions, turned into listeners by
 * `mllp_listener_builder_build` (any number of times) and freed by
 * `mllp_listener_builder_free`.
 *
 * Every setter checks its value at once: on an error it returns the code, sets the text of
 * `mllp_last_error` and leaves the setting as it was. Files named by the TLS setters are read
 * when the setter is called. Thread safety: one call at a time per builder;
 * `mllp_listener_builder_build` only reads it.
 */
typedef struct mllp_listener_builder mllp_listener_builder;

/**
 * A durable outbox: messages enqueued are on disk when `mllp_outbox_enqueue` returns, and a
 * thread of the library delivers them in order to one address, at least once, even after a
 * crash. Open with `mllp_outbox_open`, free with `mllp_outbox_free`.
 *
 * Thread safety: `mllp_outbox_enqueue` and `mllp_outbox_get_stat` may be called from many
 * threads at once (concurrent enqueues share disk flushes); `mllp_outbox_close` waits for the
 * calls under way; `mllp_outbox_free` must not run concurrently with any other call on the
 * handle.
 */
typedef struct mllp_outbox mllp_outbox;

/**
 * Settings for outboxes: made by `mllp_outbox_builder_new` with the defaults, changed by the
 * `mllp_outbox_builder_set_*` functions, used by `mllp_outbox_open` (any number of times)
 * and freed by `mllp_outbox_builder_free`. Every setter checks its value at once: on an error
 * it returns the code, sets the last-error text and leaves the setting as it was. Thread
 * safety: one call at a time per builder; `mllp_outbox_open` only reads it.
 */
typedef struct mllp_outbox_builder mllp_outbox_builder;

/**
 * The callback's answer beyond its disposition: an optional text (MSA-3, and the ERR segment
 * for an error or reject) and error code. Set with `mllp_response_set_text` and
 * `mllp_response_set_error_code`, only during the callback it was passed to.
 */
typedef struct mllp_response mllp_response;

/**
 * A blocking MLLP sender to one address. Create with `mllp_sender_builder_build`, free with
 * `mllp_sender_free`.
 *
 * Thread safety: one call at a time. The handle may move between threads, but it must not be
 * used by two threads at once: a call made while another is running on the same handle
 * returns `MLLP_INVALID_STATE` at once (nothing is sent). Use one sender per thread, or lock
 * around it. `mllp_sender_free` must not run concurrently with any other call on the handle.
 */
typedef struct mllp_sender mllp_sender;

/**
 * Settings for senders: made by `mllp_sender_builder_new` with the defaults, changed by the
 * `mllp_sender_builder_set_*` functions, turned into senders by `mllp_sender_builder_build`
 * (any number of times, to any addresses) and freed by `mllp_sender_builder_free`.
 *
 * Every setter checks its value at once: on an error it returns the code, sets the text of
 * `mllp_last_error` and leaves the setting as it was. Files named by the TLS setters are read
 * when the setter is called. Thread safety: one call at a time per builder;
 * `mllp_sender_builder_build` only reads it.
 */
typedef struct mllp_sender_builder mllp_sender_builder;

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
 * The acknowledgement code of a reply (MSA-1), or of an MLLP release 2 commit block.
 */
typedef uint32_t mllp_ack_code;

/**
 * Which counter of a decoder `mllp_decoder_get_stat` reads. New counters get new numbers;
 * the numbers never change.
 */
typedef uint32_t mllp_decoder_stat;

/**
 * How received messages are acknowledged.
 */
typedef uint32_t mllp_ack_policy;

/**
 * What the callback is told about a received message. Every pointer is valid, and every
 * byte range unchanged, only until the callback returns; copy what you keep. Byte ranges are
 * not NUL-terminated (an empty one has length 0 and a valid pointer).
 *
 * The library fills this struct; fields are only ever added at the end, and `size` says how
 * many bytes of it this library filled. A program built with a newer header than the library
 * it runs with must check a newer field with `MLLP_MESSAGE_INFO_HAS(info, field)` before
 * reading it; fields present in the header of the library's own version are always there.
 */
typedef struct mllp_message_info {
  /**
   * The size of this struct as the library filled it, in bytes (`sizeof(mllp_message_info)`
   * of the library's header).
   */
  size_t size;
  /**
   * The message as UTF-8 text (decoded from its character set; a UTF-8 BOM removed).
   */
  const uint8_t *text;
  /**
   * Bytes at `text`.
   */
  size_t text_len;
  /**
   * The frame's payload exactly as received, in its own character set.
   */
  const uint8_t *raw;
  /**
   * Bytes at `raw`.
   */
  size_t raw_len;
  /**
   * The control ID the acknowledgement echoes (MSH-10, or BHS-11/FHS-11 for a batch), as
   * received; empty when the field is empty.
   */
  const uint8_t *control_id;
  /**
   * Bytes at `control_id`.
   */
  size_t control_id_len;
  /**
   * MSH-9 whole (e.g. `ADT^A01^ADT_A01`), as received; empty for a batch header.
   */
  const uint8_t *message_type;
  /**
   * Bytes at `message_type`.
   */
  size_t message_type_len;
  /**
   * The peer's address as NUL-terminated text, `"ip:port"` (`"[ip6]:port"` for IPv6).
   */
  const char *peer;
  /**
   * The listener's number for the connection: the same for every message of one
   * connection, never reused by this listener.
   */
  uint64_t connection_id;
  /**
   * The name of the character set the message was decoded from (`"UTF-8"`, `"ISO-8859-1"`,
   * ...: its MSH-18, or the listener's character set), NUL-terminated.
   */
  const char *charset;
  /**
   * How many malformed byte sequences were replaced with U+FFFD while decoding: always 0
   * when malformed messages are rejected (the default; see
   * `mllp_listener_builder_set_reject_malformed`).
   */
  size_t replaced;
  /**
   * The verified subject of the client's TLS certificate, `CN=...,O=...` (a listener with
   * `mllp_listener_builder_set_tls_client_ca`); empty otherwise.
   */
  const uint8_t *tls_subject;
  /**
   * Bytes at `tls_subject`.
   */
  size_t tls_subject_len;
  /**
   * The client's TLS certificate, DER (a listener with
   * `mllp_listener_builder_set_tls_client_ca`); empty otherwise.
   */
  const uint8_t *tls_certificate;
  /**
   * Bytes at `tls_certificate`.
   */
  size_t tls_certificate_len;
} mllp_message_info;

/**
 * Called for every received message whose header could be read; returns one of
 * `MLLP_DISPOSITION_*`, which decides the acknowledgement (accept: AA/CA, error: AE/CE,
 * reject: AR/CR; in MLLP release 2 mode a commit ACK or NAK). Any other value is answered
 * with AE "application internal error".
 *
 * The acknowledgement is written after the callback returns, so storing the message before
 * returning accept gives "store, then ACK".
 *
 * Threads: called on the listener's connection threads, one per connection: at most one call
 * at a time per connection, but calls for different connections run concurrently, so the
 * callback and `userdata` must be thread-safe. A slow callback delays only its own
 * connection. It may call `mllp_listener_stop` (which then returns at once) and
 * `mllp_listener_get_stat`, but not `mllp_listener_free`.
 *
 * `info` and `response` are valid only until the callback returns.
 */
typedef mllp_disposition (*mllp_message_cb)(void *userdata,
                                            const struct mllp_message_info *info,
                                            struct mllp_response *response);

/**
 * Which counter of a listener `mllp_listener_get_stat` reads. New counters get new numbers;
 * the numbers never change.
 */
typedef uint32_t mllp_listener_stat;

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
 * Which counter `mllp_outbox_get_stat` reads. New counters get new numbers; the numbers
 * never change.
 */
typedef uint32_t mllp_outbox_stat;

/**
 * Which part of a dead letter `mllp_dead_letters_get` copies.
 */
typedef uint32_t mllp_dead_letter_part;

/**
 * Which counter of a sender `mllp_sender_get_stat` reads. New counters get new numbers; the
 * numbers never change.
 */
typedef uint32_t mllp_sender_stat;

/**
 * Flags of `mllp_split_messages`, or-ed together.
 */
typedef uint32_t mllp_split_flags;

/**
 * Called by `mllp_split_messages` for each message, in file order: `msg`/`msg_len` is the
 * message (not NUL-terminated, valid only until the callback returns: copy what you keep),
 * `index` its position from 0. Return 0 to go on, anything else to stop.
 */
typedef int32_t (*mllp_split_cb)(void *userdata,
                                 size_t index,
                                 const uint8_t *msg,
                                 size_t msg_len);

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
 * No acknowledgement: the call failed before one arrived.
 */
#define MLLP_ACK_NONE 0

/**
 * `AA`: application accept.
 */
#define MLLP_ACK_AA 1

/**
 * `AE`: application error.
 */
#define MLLP_ACK_AE 2

/**
 * `AR`: application reject.
 */
#define MLLP_ACK_AR 3

/**
 * `CA`: commit accept (enhanced mode).
 */
#define MLLP_ACK_CA 4

/**
 * `CE`: commit error (enhanced mode).
 */
#define MLLP_ACK_CE 5

/**
 * `CR`: commit reject (enhanced mode).
 */
#define MLLP_ACK_CR 6

/**
 * MLLP release 2 commit acknowledgement (a frame holding 0x06).
 */
#define MLLP_ACK_COMMIT_ACCEPT 7

/**
 * MLLP release 2 negative commit acknowledgement (a frame holding 0x15).
 */
#define MLLP_ACK_COMMIT_REJECT 8

/**
 * Frames handed out.
 */
#define MLLP_DECODER_STAT_FRAMES 0

/**
 * Bytes dropped outside any frame (junk before a start sequence).
 */
#define MLLP_DECODER_STAT_SKIPPED_BYTES 1

/**
 * Partial frames dropped because a start sequence arrived inside them.
 */
#define MLLP_DECODER_STAT_DISCARDED_FRAMES 2

/**
 * Frames larger than the maximum message size (skipped).
 */
#define MLLP_DECODER_STAT_OVERSIZED_FRAMES 3

/**
 * Frames cut short by the end of the stream (`mllp_decoder_finish`).
 */
#define MLLP_DECODER_STAT_TRUNCATED_FRAMES 4

/**
 * HL7 acknowledgements following the message: original mode (AA/AE/AR) when MSH-15 and
 * MSH-16 are empty, enhanced mode (CA/CE/CR, sent as MSH-15 asks: none for `NE`) otherwise.
 * Only for peers that really speak enhanced mode: many senders fill MSH-15/16 and still wait
 * for an ACK to every message.
 */
#define MLLP_ACK_POLICY_AUTO 0

/**
 * Original-mode acknowledgements (AA/AE/AR) to every message, whatever MSH-15/16 say. The
 * default, as in Rust and the command line.
 */
#define MLLP_ACK_POLICY_ORIGINAL 1

/**
 * MLLP release 2 commit blocks: 0x06 when the callback accepted, 0x15 otherwise.
 */
#define MLLP_ACK_POLICY_MLLP2 2

/**
 * Connections being served now.
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_OPEN 0

/**
 * Connections served since the start (refused ones not included).
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_TOTAL 1

/**
 * Connections closed at once because every slot was taken.
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_REFUSED 2

/**
 * Idle connections closed to make room for a new one (`replace_idle`).
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_REPLACED 3

/**
 * Messages handed to the callback.
 */
#define MLLP_LISTENER_STAT_MESSAGES 4

/**
 * `AA` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_AA 5

/**
 * `AE` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_AE 6

/**
 * `AR` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_AR 7

/**
 * `CA` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_CA 8

/**
 * `CE` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_CE 9

/**
 * `CR` acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_ACKS_CR 10

/**
 * MLLP release 2 commit acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_COMMIT_ACKS 11

/**
 * MLLP release 2 negative commit acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_COMMIT_NAKS 12

/**
 * Acknowledgements not sent because MSH-15 asked for none.
 */
#define MLLP_LISTENER_STAT_ACKS_SUPPRESSED 13

/**
 * Frames whose header could not be read, answered with AR without calling the callback.
 */
#define MLLP_LISTENER_STAT_NAK_UNPARSEABLE 14

/**
 * Messages not valid in their character set, answered with AE without calling the callback.
 */
#define MLLP_LISTENER_STAT_CHARSET_ERRORS 15

/**
 * Bytes received outside any frame and dropped.
 */
#define MLLP_LISTENER_STAT_SKIPPED_BYTES 16

/**
 * Frames larger than the maximum message size (skipped and answered negatively).
 */
#define MLLP_LISTENER_STAT_OVERSIZED_FRAMES 17

/**
 * Connections closed because a started frame did not complete in time.
 */
#define MLLP_LISTENER_STAT_FRAME_TIMEOUTS 18

/**
 * Connections closed because they were idle too long.
 */
#define MLLP_LISTENER_STAT_IDLE_TIMEOUTS 19

/**
 * TLS handshakes that failed or timed out.
 */
#define MLLP_LISTENER_STAT_TLS_FAILURES 20

/**
 * Connections closed to make room for a new one because they had gone longest without
 * completing a frame (`mllp_listener_builder_set_evict_after_ms`).
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_EVICTED 21

/**
 * Handler calls that panicked (answered with AE).
 */
#define MLLP_LISTENER_STAT_HANDLER_PANICS 22

/**
 * Custom acknowledgements sent.
 */
#define MLLP_LISTENER_STAT_CUSTOM_ACKS 23

/**
 * Connections closed without acknowledging their last message (the callback asked to close).
 */
#define MLLP_LISTENER_STAT_CLOSED_UNANSWERED 24

/**
 * TLS connections in their handshake, or waiting for a slot after it, now.
 */
#define MLLP_LISTENER_STAT_HANDSHAKES_PENDING 25

/**
 * TLS connections closed in their handshake to make room for a new connection.
 */
#define MLLP_LISTENER_STAT_HANDSHAKES_DROPPED 26

/**
 * Bytes read from the connections.
 */
#define MLLP_LISTENER_STAT_RECEIVED_BYTES 27

/**
 * Connections served that have closed.
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_CLOSED 28

/**
 * Connections closed at once because their peer is outside the allow list
 * (`mllp_listener_builder_add_allow`).
 */
#define MLLP_LISTENER_STAT_CONNECTIONS_DENIED 29

/**
 * Connections closed for their PROXY protocol header: missing, malformed or late from a
 * listed proxy, or sent by an address not listed.
 */
#define MLLP_LISTENER_STAT_PROXY_REFUSED 30

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
 * Messages enqueued and not yet delivered nor dead-lettered (the one in flight included).
 */
#define MLLP_OUTBOX_STAT_PENDING 0

/**
 * Their bytes on disk, record headers included.
 */
#define MLLP_OUTBOX_STAT_PENDING_BYTES 1

/**
 * 1 while a message is being delivered, else 0.
 */
#define MLLP_OUTBOX_STAT_IN_FLIGHT 2

/**
 * Messages delivered (AA or CA) since the outbox directory was created.
 */
#define MLLP_OUTBOX_STAT_DELIVERED 3

/**
 * Messages in the dead-letter area.
 */
#define MLLP_OUTBOX_STAT_DEAD_LETTERED 4

/**
 * How long the oldest pending message has waited, in milliseconds (0 when none is pending).
 */
#define MLLP_OUTBOX_STAT_OLDEST_PENDING_AGE_MS 5

/**
 * 1 while delivery is held at a rejected message (`MLLP_OUTBOX_HOLD`), else 0.
 */
#define MLLP_OUTBOX_STAT_HELD 6

/**
 * Enqueues refused with `MLLP_FULL` since the outbox was opened.
 */
#define MLLP_OUTBOX_STAT_REFUSED_FULL 7

/**
 * Disk flushes made for enqueues since the outbox was opened (fewer than the enqueues when
 * concurrent enqueues shared them).
 */
#define MLLP_OUTBOX_STAT_SYNCS 8

/**
 * Damaged byte ranges found in the segments (kept in `DIR/damaged/`).
 */
#define MLLP_OUTBOX_STAT_DAMAGED_REGIONS 9

/**
 * Their total size in bytes.
 */
#define MLLP_OUTBOX_STAT_DAMAGED_BYTES 10

/**
 * Segments found missing between others (their messages are lost).
 */
#define MLLP_OUTBOX_STAT_MISSING_SEGMENTS 11

/**
 * Times the delivery cursor was found unreadable (messages delivered again).
 */
#define MLLP_OUTBOX_STAT_CURSOR_LOST 12

/**
 * Delivery attempts answered positively since the outbox was opened.
 */
#define MLLP_OUTBOX_STAT_DELIVERIES_ACCEPTED 13

/**
 * Delivery attempts answered negatively since the outbox was opened.
 */
#define MLLP_OUTBOX_STAT_DELIVERIES_REJECTED 14

/**
 * Delivery attempts that got no answer since the outbox was opened.
 */
#define MLLP_OUTBOX_STAT_DELIVERIES_FAILED 15

/**
 * The message as enqueued (bytes, not NUL-terminated).
 */
#define MLLP_DEAD_LETTER_MESSAGE 0

/**
 * Why it is there: the negative acknowledgement (its code, the destination, its text) or the
 * last delivery error (bytes, not NUL-terminated).
 */
#define MLLP_DEAD_LETTER_REASON 1

/**
 * Its control ID (MSH-10), empty when the header cannot be read.
 */
#define MLLP_DEAD_LETTER_CONTROL_ID 2

/**
 * Its file name in the dead-letter area.
 */
#define MLLP_DEAD_LETTER_NAME 3

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

/**
 * The outbox holds its most pending messages or bytes: the message was not taken. Try again
 * once deliveries have made room.
 */
#define MLLP_FULL 700

/**
 * Another outbox (in this process or another) has the directory open; the last-error text
 * names the process.
 */
#define MLLP_LOCKED 701

/**
 * An outbox segment other than the last holds a bad record (not a torn tail); the last-error
 * text names the file. Nothing was changed.
 */
#define MLLP_CORRUPT 702

/**
 * An error of a kind that has no code of its own in this version of the C API (the Rust
 * library's errors can grow); the last-error text says what it is.
 */
#define MLLP_ERROR 900

/**
 * Sends that returned an acknowledgement (positive or negative).
 */
#define MLLP_SENDER_STAT_MESSAGES 0

/**
 * Sends that failed with `MLLP_NOT_DELIVERED` or `MLLP_UNCONFIRMED`.
 */
#define MLLP_SENDER_STAT_FAILURES 1

/**
 * Frames written completely, resends included.
 */
#define MLLP_SENDER_STAT_FRAMES_WRITTEN 2

/**
 * Positive acknowledgements received (AA, CA, commit accept).
 */
#define MLLP_SENDER_STAT_ACKS 3

/**
 * Negative acknowledgements received, including those answered by a resend.
 */
#define MLLP_SENDER_STAT_NEGATIVE_ACKS 4

/**
 * Attempts after the first, over all messages.
 */
#define MLLP_SENDER_STAT_RETRIES 5

/**
 * Connections established.
 */
#define MLLP_SENDER_STAT_CONNECTS 6

/**
 * Connections established to replace a lost one.
 */
#define MLLP_SENDER_STAT_RECONNECTS 7

/**
 * ACK timeouts.
 */
#define MLLP_SENDER_STAT_ACK_TIMEOUTS 8

/**
 * Reply frames skipped while waiting for an acknowledgement (late ACKs for other control
 * IDs, frames that are not ACKs).
 */
#define MLLP_SENDER_STAT_SKIPPED_FRAMES 9

/**
 * A batch file (one that starts with FHS or BHS) gives each of its MSH messages on its own,
 * without the envelope segments; without this flag the whole batch is one message.
 */
#define MLLP_SPLIT_BATCH 1

/**
 * LF and CRLF segment endings become CR, HL7's segment terminator (and a UTF-8 byte order mark
 * is dropped); without this flag each message's bytes are as in the file.
 */
#define MLLP_SPLIT_NORMALISE_ENDINGS 2

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
 *   holds a reject (AR, MSA-2 the MSH-10 if it can still be found, the reason in MSA-3 and
 *   ERR) whatever `disposition` and `text` said. Send it back all the same.
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
 * Copies the text of an acknowledgement (MSA-3, unescaped, as UTF-8) into `buf`,
 * NUL-terminated: for the bytes `mllp_sender_send` returned, say.
 *
 * `ack`/`ack_len` is the reply frame's payload (not NULL). `*needed` receives the size the
 * whole text needs, terminator included (1 when MSA-3 is empty or absent, and for an MLLP
 * release 2 commit block). `buf` may be NULL when `cap` is 0, to ask for the size; a short
 * buffer gets as much as fits and `MLLP_BUFFER_TOO_SMALL`. The text is decoded in the
 * character set MSH-18 names (else UTF-8), malformed bytes replaced.
 *
 * Errors: `MLLP_HEADER` (no readable MSH), `MLLP_NOT_AN_ACK` (no MSA segment with a known
 * code), `MLLP_BUFFER_TOO_SMALL`, `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_ack_text(const uint8_t *ack,
                          size_t ack_len,
                          char *buf,
                          size_t cap,
                          size_t *needed);

/**
 * Stores the number of ERR segments of an acknowledgement in `*count` (0 when there are none,
 * and for an MLLP release 2 commit block); read each with `mllp_ack_error_text`.
 *
 * Errors: `MLLP_HEADER`, `MLLP_NOT_AN_ACK`, `MLLP_NULL_ARGUMENT` (as `mllp_ack_text`).
 * Thread-safe.
 */
mllp_result mllp_ack_error_count(const uint8_t *ack,
                                 size_t ack_len,
                                 size_t *count);

/**
 * Copies the text of the ERR segment number `index` (from 0, in the order received) of an
 * acknowledgement into `buf`, NUL-terminated, as `mllp_ack_text` does: ERR-8 when valued,
 * else the text of ERR-3, else the text (or code) in ERR-1's fourth component; unescaped.
 *
 * Errors: `MLLP_INVALID_ARGUMENT` (`index` not below `mllp_ack_error_count`), `MLLP_HEADER`,
 * `MLLP_NOT_AN_ACK`, `MLLP_BUFFER_TOO_SMALL`, `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_ack_error_text(const uint8_t *ack,
                                size_t ack_len,
                                size_t index,
                                char *buf,
                                size_t cap,
                                size_t *needed);

/**
 * A static NUL-terminated name of an acknowledgement code: `"AA"`, `"AE"`, ..., `"commit
 * accept"`, `"commit reject"`, `"none"`; `"unknown"` for any other value. Never NULL; do not
 * free it. Thread-safe.
 */
const char *mllp_ack_code_str(mllp_ack_code code);

/**
 * Sets the response text: MSA-3 and, for an error or reject, the ERR segment's text. `text` is
 * NUL-terminated UTF-8, copied at once (it may be freed when this returns); NULL clears it.
 * Only valid on the `response` passed to a running callback.
 *
 * Errors: `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT` (`response` NULL).
 */
mllp_result mllp_response_set_text(struct mllp_response *response,
                                   const char *text);

/**
 * Sets the HL7 table 0357 error code of the ERR segment (e.g. 200 unsupported message type,
 * 207 application internal error) for an error or reject; ignored for an accept. The
 * defaults are 207 for an error and 200 for a reject. Only valid on the `response` passed to
 * a running callback. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_response_set_error_code(struct mllp_response *response,
                                         uint16_t code);

/**
 * Creates a decoder.
 *
 * `framing` may be NULL for the defaults; it is copied. On success `*out` receives the new
 * handle, to be freed with `mllp_decoder_free`; on failure `*out` is set to NULL (when `out`
 * is not NULL).
 *
 * Errors: `MLLP_NULL_ARGUMENT` when `out` is NULL.
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
 * silently (see `mllp_decoder_get_stat`).
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
 * Stores the decoder's counter `which` (`MLLP_DECODER_STAT_*`, counted since the decoder was
 * created) in `*value`. Errors: `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_decoder_get_stat(const struct mllp_decoder *decoder,
                                  mllp_decoder_stat which,
                                  uint64_t *value);

/**
 * Frees a decoder. NULL is allowed and does nothing. Frames handed out by it become invalid.
 */
void mllp_decoder_free(struct mllp_decoder *decoder);

/**
 * Creates framing settings with the defaults: start `0x0B`, end `0x1C 0x0D`, 16 MiB maximum,
 * strict end, restart on a start sequence inside a frame. `*out` receives the value (NULL on
 * failure); free it with `mllp_framing_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_framing_new(struct mllp_framing **out);

/**
 * Sets the start and end sequences together (each 1 to 8 bytes; the end sequence must begin
 * with a byte other than the start sequence's first byte). Both pointers must not be NULL.
 * Errors: `MLLP_CONFIG` (a length outside 1 to 8, sequences that clash), `MLLP_NULL_ARGUMENT`;
 * on an error nothing changes.
 */
mllp_result mllp_framing_set_sequences(struct mllp_framing *framing,
                                       const uint8_t *start,
                                       size_t start_len,
                                       const uint8_t *end,
                                       size_t end_len);

/**
 * Sets the largest payload accepted, in bytes (at least 1; default 16 MiB). Larger frames are
 * skipped and reported as `MLLP_FRAME_OVERSIZED`. Errors: `MLLP_CONFIG` (0),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_framing_set_max_message_size(struct mllp_framing *framing,
                                              size_t bytes);

/**
 * 1: a frame also ends at the first byte of the end sequence when the rest of the sequence
 * does not follow (for peers that send `0x1C` without `0x0D`); 0 (the default): strict.
 * Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_framing_set_lenient_end(struct mllp_framing *framing,
                                         int lenient);

/**
 * What a start sequence inside a frame means: `MLLP_START_IN_FRAME_RESTART` (the default) or
 * `MLLP_START_IN_FRAME_IGNORE`. Errors: `MLLP_INVALID_ARGUMENT` (another value),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_framing_set_start_in_frame(struct mllp_framing *framing,
                                            uint32_t policy);

/**
 * Frees framing settings. NULL is allowed and does nothing.
 */
void mllp_framing_free(struct mllp_framing *framing);

/**
 * Frames one payload: writes start sequence + payload + end sequence into `out`.
 *
 * `framing` may be NULL for the defaults. `payload` must not be NULL (even when
 * `payload_len` is 0). `out` (capacity `out_cap`) may be NULL only when `out_cap` is 0, and
 * must not overlap the payload. On `MLLP_OK`, `*out_len` is the frame's length.
 *
 * Errors: `MLLP_BUFFER_TOO_SMALL` with the size needed in `*out_len` (nothing written);
 * `MLLP_FRAME_PAYLOAD_CONTAINS_END` when the payload contains the end sequence (the peer would
 * split it); `MLLP_INVALID_ARGUMENT` when the buffers overlap; `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_encode_frame(const struct mllp_framing *framing,
                              const uint8_t *payload,
                              size_t payload_len,
                              uint8_t *out,
                              size_t out_cap,
                              size_t *out_len);

/**
 * Copies the text of the last failed call on the calling thread into `buf`, NUL-terminated.
 *
 * Every function that returns an error code (100 and above) sets this text, on the thread
 * that called it; successful calls leave it as it was, so it describes the most recent
 * failure on this thread (empty when there was none). A listener callback runs on a library
 * thread: it sees the text of calls made on that thread.
 *
 * `*needed` receives the size the whole text needs, terminator included (1 for an empty
 * text). `buf` may be NULL when `cap` is 0, to ask for the size. When `cap` is too small,
 * `buf` receives as much as fits, cut at a character boundary and NUL-terminated when `cap`
 * is not 0, and the result is `MLLP_BUFFER_TOO_SMALL`. This function never changes the text.
 * Errors: `MLLP_NULL_ARGUMENT` (`needed` NULL, or `buf` NULL with `cap` > 0). Thread-safe.
 */
mllp_result mllp_last_error(char *buf,
                            size_t cap,
                            size_t *needed);

/**
 * Creates a listener builder with the defaults (those of the Rust `Listener::builder`): default
 * framing, UTF-8 unless MSH-18 names another character set, malformed messages rejected, 10
 * connections at most (a new one beyond is refused, or takes the slot of one silent for 5 s),
 * frame timeout 60 s, no idle timeout, write timeout 10 s, TLS handshake timeout 10 s, 64
 * connections pending their handshake at most, shutdown grace 10 s, `MLLP_ACK_POLICY_ORIGINAL`,
 * 128 KiB thread stacks, plain TCP, TCP keepalive on (300 s, 60 s, 5 probes), every peer allowed,
 * no PROXY protocol. `*out` receives the builder (NULL on failure); free it with
 * `mllp_listener_builder_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_listener_builder_new(struct mllp_listener_builder **out);

/**
 * Copies framing settings: the sequences, and the largest message accepted (larger messages
 * are skipped and answered with a negative acknowledgement). `framing` must not be NULL; it
 * may be freed afterwards. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_framing(struct mllp_listener_builder *builder,
                                              const struct mllp_framing *framing);

/**
 * The character set messages are decoded from when MSH-18 names none (or detection is off):
 * a label such as `"UTF-8"` (the default, also for NULL), `"ISO-8859-1"`, `"8859/1"`,
 * `"windows-1252"`. Errors: `MLLP_CHARSET` (unknown label), `MLLP_INVALID_ARGUMENT` (not
 * UTF-8), `MLLP_NULL_ARGUMENT` (`builder` NULL).
 */
mllp_result mllp_listener_builder_set_charset(struct mllp_listener_builder *builder,
                                              const char *label);

/**
 * 1 (the default): decode each message in the character set its MSH-18 names, when it names
 * a known one; 0: always in the listener's character set. Errors: `MLLP_INVALID_ARGUMENT`
 * (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_detect_msh18(struct mllp_listener_builder *builder,
                                                   int on);

/**
 * 1 (the default): a message with bytes not valid in its character set is answered with AE,
 * naming the byte offset, without calling the callback. 0: such bytes reach the callback as
 * U+FFFD (`mllp_message_info.replaced` counts them). Errors: `MLLP_INVALID_ARGUMENT` (not 0
 * or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_reject_malformed(struct mllp_listener_builder *builder,
                                                       int on);

/**
 * The most connections served at once (at least 1). Default 10. Errors: `MLLP_CONFIG` (0),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_max_connections(struct mllp_listener_builder *builder,
                                                      uint32_t max);

/**
 * What happens to a connection beyond the maximum: 0 (the default) closes it at once; 1
 * leaves it waiting until a connection ends. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_backlog_overflow(struct mllp_listener_builder *builder,
                                                       int on);

/**
 * 1, with a maximum of 1 connection: a new connection replaces the current one when that one
 * is idle (no frame under way, no message being handled). Default 0. Errors:
 * `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_replace_idle(struct mllp_listener_builder *builder,
                                                   int on);

/**
 * When every slot is taken, a new connection takes the slot of the connection that has gone
 * longest without completing a frame, once that is at least this long, in milliseconds; a
 * connection whose message is in the callback is never chosen. 0: never (the new connection
 * is refused or waits, see `mllp_listener_builder_set_backlog_overflow`). Default 5000.
 * Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_evict_after_ms(struct mllp_listener_builder *builder,
                                                     uint32_t ms);

/**
 * How long a started frame may take to arrive completely, in milliseconds; 0: no limit.
 * Default 60000. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_frame_timeout_ms(struct mllp_listener_builder *builder,
                                                       uint32_t ms);

/**
 * How long a connection may go without a message before it is closed, in milliseconds; 0
 * (the default): no limit. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_idle_timeout_ms(struct mllp_listener_builder *builder,
                                                      uint32_t ms);

/**
 * How long writing one acknowledgement may take, in milliseconds; 0: no limit. Default
 * 10000. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_write_timeout_ms(struct mllp_listener_builder *builder,
                                                       uint32_t ms);

/**
 * How long a TLS handshake may take, in milliseconds (at least 1). Default 10000. Errors:
 * `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_handshake_timeout_ms(struct mllp_listener_builder *builder,
                                                           uint32_t ms);

/**
 * The most connections that may wait at once without a slot (at least 1), those in their
 * TLS handshake (or reading their PROXY protocol header) and those that finished it and wait
 * for a slot: a connection runs its handshake before it takes one of the
 * `mllp_listener_builder_set_max_connections` slots, on a thread of its own. When this many
 * are pending, a new connection closes the oldest one still in its handshake (counted in
 * `MLLP_LISTENER_STAT_HANDSHAKES_DROPPED`), so peers that open connections and stall cannot
 * hold more than this many threads and sockets. Default 64. Only used with TLS or the PROXY
 * protocol. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_max_handshakes(struct mllp_listener_builder *builder,
                                                     uint32_t max);

/**
 * How long stopping waits for messages being handled to be acknowledged, in milliseconds
 * (0: not at all). Default 10000. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_shutdown_grace_ms(struct mllp_listener_builder *builder,
                                                        uint32_t ms);

/**
 * How messages are acknowledged: one of `MLLP_ACK_POLICY_*`. Default
 * `MLLP_ACK_POLICY_ORIGINAL`.
 * Errors: `MLLP_INVALID_ARGUMENT` (another value), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_ack_policy(struct mllp_listener_builder *builder,
                                                 mllp_ack_policy policy);

/**
 * The stack size of the threads that call the callback, in bytes (from
 * `MLLP_LISTENER_MIN_STACK_SIZE` to `MLLP_LISTENER_MAX_STACK_SIZE`). Default
 * `MLLP_LISTENER_DEFAULT_STACK_SIZE`. Errors: `MLLP_CONFIG` (too small or too large),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_stack_size(struct mllp_listener_builder *builder,
                                                 size_t bytes);

/**
 * Frees a listener builder; listeners built from it are not affected. NULL is allowed and
 * does nothing.
 */
void mllp_listener_builder_free(struct mllp_listener_builder *builder);

/**
 * Creates a listener with the builder's settings and binds it to `bind_address`
 * (`"0.0.0.0:2575"`, `"[::]:2575"`, `"127.0.0.1:0"` for any free port: see
 * `mllp_listener_local_port`). The builder is not changed and may build more listeners, or be
 * freed.
 *
 * `callback` (not NULL) is called for every message once the listener serves, with
 * `userdata`, which must stay valid until `mllp_listener_free` returns. Nothing is served
 * until `mllp_listener_start` or `mllp_listener_run`. On success `*out` receives the handle;
 * on failure `*out` is NULL and `mllp_last_error` gives the reason.
 *
 * Errors: `MLLP_CONFIG` (bad address), `MLLP_IO` (the address cannot be bound), `MLLP_TLS`
 * (the certificate or key cannot be used, a wrong PKCS#12 password, TLS in a library built
 * without it), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_listener_builder_build(const struct mllp_listener_builder *builder,
                                        const char *bind_address,
                                        mllp_message_cb callback,
                                        void *userdata,
                                        struct mllp_listener **out);

/**
 * Stores the port the listener is bound to (the one chosen by the system when bound to port
 * 0) in `*port`. Thread-safe.
 */
mllp_result mllp_listener_local_port(const struct mllp_listener *listener,
                                     uint16_t *port);

/**
 * Starts serving on library threads and returns at once: one thread accepts connections, and
 * each connection gets a thread of its own, which calls the callback (see `mllp_message_cb`).
 *
 * Errors: `MLLP_INVALID_STATE` (already serving, or stopped), `MLLP_IO` (a thread cannot be
 * started), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_listener_start(struct mllp_listener *listener);

/**
 * Serves on the calling thread: accepts connections (each served by a thread of its own,
 * which calls the callback) until `mllp_listener_stop` is called, from another thread or from
 * a callback; then lets messages being handled finish (the shutdown grace period), closes
 * the connections and returns `MLLP_OK`.
 *
 * Errors: `MLLP_INVALID_STATE` (already serving, or stopped), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_run(struct mllp_listener *listener);

/**
 * Stops the listener, gracefully: no new connections are accepted, messages being handled
 * are finished and acknowledged within the shutdown grace period, then connections close.
 *
 * Called outside a callback on a listener started with `mllp_listener_start`, it returns once
 * every connection thread has finished (no callback is running or will run). Called from a
 * callback, or on a listener served by `mllp_listener_run`, it returns at once (the
 * `mllp_listener_run` call returns when the listener has stopped). Stopping a listener that
 * never served just closes its socket. A stopped listener cannot serve again; calling this
 * again does nothing. Thread-safe.
 */
mllp_result mllp_listener_stop(struct mllp_listener *listener);

/**
 * Stores the listener's counter `which` (`MLLP_LISTENER_STAT_*`, counted since the listener
 * was created) in `*value`. Each counter is read on its own, so counters read while
 * connections are busy may be a few events apart. Thread-safe, also from a callback. Errors:
 * `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_get_stat(const struct mllp_listener *listener,
                                   mllp_listener_stat which,
                                   uint64_t *value);

/**
 * Stops the listener if it is serving (as `mllp_listener_stop`, waiting for it: for a
 * `mllp_listener_run` on another thread, until that call returns), then frees it. NULL is
 * allowed and does nothing. After it returns the callback is not running and will not run
 * again, so `userdata` may be freed. Must not be called from a callback (that is reported
 * by an error log record and the handle is left alone).
 */
void mllp_listener_free(struct mllp_listener *listener);

/**
 * Serves TLS with the PEM certificate chain `cert_file` and its unencrypted PKCS#8 PEM key
 * `key_file` (neither NULL), read now. Replaces an identity set before. Errors: `MLLP_IO` (a
 * file cannot be read), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a certificate or key
 * that cannot be used is `MLLP_TLS` from `mllp_listener_builder_build`.
 */
mllp_result mllp_listener_builder_set_tls_identity_pem(struct mllp_listener_builder *builder,
                                                       const char *cert_file,
                                                       const char *key_file);

/**
 * As `mllp_listener_builder_set_tls_identity_pem`, from a PKCS#12 archive (`.p12` / `.pfx`,
 * not NULL) holding the server certificate, its chain and its key, with `password` (NULL:
 * empty). A wrong password is `MLLP_TLS` from `mllp_listener_builder_build`.
 */
mllp_result mllp_listener_builder_set_tls_identity_pkcs12(struct mllp_listener_builder *builder,
                                                          const char *file,
                                                          const char *password);

/**
 * Requires every TLS client to present a certificate that chains to a CA certificate of the
 * PEM file `ca_file` (not NULL, read now), and refuses the handshake of a client without one,
 * or with one from another CA, expired or not yet valid (mutual TLS). The verified subject
 * and the certificate reach the callback (`tls_subject`, `tls_certificate` of
 * `mllp_message_info`). Needs a TLS identity
 * (`mllp_listener_builder_set_tls_identity_pem` or `..._pkcs12`) by
 * `mllp_listener_builder_build`. Errors: `MLLP_IO` (the file cannot be read),
 * `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a file without a PEM certificate is
 * `MLLP_TLS` from `mllp_listener_builder_build`.
 */
mllp_result mllp_listener_builder_set_tls_client_ca(struct mllp_listener_builder *builder,
                                                    const char *ca_file);

/**
 * The oldest TLS version the listener accepts: 12 (TLS 1.2, the default) or 13 (TLS 1.3).
 * Errors: `MLLP_CONFIG` for another value, `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_tls_min_version(struct mllp_listener_builder *builder,
                                                      uint32_t version);

/**
 * Renews the certificate of a TLS listener while it serves: reads the PEM certificate chain
 * `cert_file`, its PKCS#8 key `key_file` (neither NULL) and, unless `client_ca_file` is NULL,
 * the CA file client certificates must chain to (NULL: no client certificate is required from
 * now on), and gives new connections the new settings; connections already open keep theirs.
 * A reload that fails (a file missing, a key that does not match) changes nothing and says why
 * in `mllp_last_error`. The oldest TLS version stays as set on the builder. Errors:
 * `MLLP_INVALID_STATE` (a plain TCP listener), `MLLP_IO`, `MLLP_TLS`, `MLLP_INVALID_ARGUMENT`,
 * `MLLP_NULL_ARGUMENT`. Thread-safe, also from a callback.
 */
mllp_result mllp_listener_reload_tls_pem(const struct mllp_listener *listener,
                                         const char *cert_file,
                                         const char *key_file,
                                         const char *client_ca_file);

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
 * TCP keepalive on the sender's connections: a probe after `idle_s` seconds without traffic,
 * then one every `interval_s` seconds, the connection dropped after `count` unanswered, so a
 * listener that vanished behind a firewall is noticed without a message. `idle_s` 0 turns
 * keepalive off (the other values are then ignored). Default: on, 300, 60, 5 (5 minutes,
 * 1 minute, 5 probes). Errors: `MLLP_CONFIG` (idle time or interval above 32767 s, count
 * 0 or above 127), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_keepalive(struct mllp_sender_builder *builder,
                                              uint32_t idle_s,
                                              uint32_t interval_s,
                                              uint32_t count);

/**
 * TCP keepalive on accepted connections, as `mllp_sender_builder_set_keepalive`: a sender
 * that vanished frees its connection slot without a message. `idle_s` 0 turns it off.
 * Default: on, 300, 60, 5. Errors: `MLLP_CONFIG`, `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_set_keepalive(struct mllp_listener_builder *builder,
                                                uint32_t idle_s,
                                                uint32_t interval_s,
                                                uint32_t count);

/**
 * Lets the peers in `cidr` connect (`"10.0.0.0/8"`, `"192.0.2.7"`, `"fd00::/8"`, or several
 * separated by commas; not NULL); once a block is added, every other peer is closed at once,
 * before a slot, a handshake or a callback (counted in
 * `MLLP_LISTENER_STAT_CONNECTIONS_DENIED`). The address checked is the client's, after any
 * PROXY protocol header. Default: everyone. Errors: `MLLP_CONFIG` (not an address block, or
 * bits set after the prefix), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_add_allow(struct mllp_listener_builder *builder,
                                            const char *cidr);

/**
 * Connections from the proxies in `cidr` (as in `mllp_listener_builder_add_allow`; HAProxy
 * with `send-proxy-v2`, say) start with a PROXY protocol header, version 1 or 2, read before
 * the TLS handshake; the client it names is the peer the callback and the allow list see.
 * From these addresses the header is required; from anyone else a header is refused (counted
 * in `MLLP_LISTENER_STAT_PROXY_REFUSED`). Default: the PROXY protocol is off. Errors:
 * `MLLP_CONFIG`, `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_listener_builder_add_proxy_protocol_from(struct mllp_listener_builder *builder,
                                                          const char *cidr);

/**
 * Creates an outbox builder with the defaults (those of the Rust `OutboxConfig`): delivery
 * with the defaults of `mllp_sender_builder_new` (messages sent as the bytes given), tried
 * without limit with a backoff of 250 ms doubling to 30 s, AE/AR dead-lettered, at most
 * 1,000,000 messages and 1 GiB pending, segment files of 16 MiB, operator actions of other
 * processes looked for every second, delivery on. `*out` receives the builder (NULL on
 * failure); free it with `mllp_outbox_builder_free`. Errors: `MLLP_NULL_ARGUMENT`.
 * Thread-safe.
 */
mllp_result mllp_outbox_builder_new(struct mllp_outbox_builder **out);

/**
 * Copies the delivery settings of a sender builder (framing, character set, timeouts, TLS,
 * MLLP release 2, AR resends); its retry policy is not used (see
 * `mllp_outbox_builder_set_retry`). When that builder names a character set, enqueued messages
 * must be UTF-8 and are encoded into it when delivered; otherwise they are delivered as the
 * bytes given. `sender` may be freed afterwards. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_sender(struct mllp_outbox_builder *builder,
                                           const struct mllp_sender_builder *sender);

/**
 * How a message that could not be delivered (no connection, no acknowledgement) is tried
 * again: the most attempts, the first included (0, the default: no limit; with a limit, a
 * message that used them up is dead-lettered), the delay before the second attempt and the
 * longest delay, in milliseconds (not below the first). Defaults 0, 250, 30000. Errors:
 * `MLLP_CONFIG` (`max_backoff_ms` below `initial_backoff_ms`), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_retry(struct mllp_outbox_builder *builder,
                                          uint32_t max_attempts,
                                          uint32_t initial_backoff_ms,
                                          uint32_t max_backoff_ms);

/**
 * What an AE or AR from the destination does: `MLLP_OUTBOX_DEAD_LETTER` (the default) or
 * `MLLP_OUTBOX_HOLD`. Errors: `MLLP_INVALID_ARGUMENT` (another value), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_on_reject(struct mllp_outbox_builder *builder,
                                              int on_reject);

/**
 * The bounds: the most pending messages and the most bytes of them (both at least 1);
 * `mllp_outbox_enqueue` returns `MLLP_FULL` at once beyond them. Defaults 1000000 and
 * 1073741824. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_bounds(struct mllp_outbox_builder *builder,
                                           uint64_t max_messages,
                                           uint64_t max_bytes);

/**
 * The size, in bytes (at least 1), after which a new segment file is started; a segment is
 * deleted once all its messages are delivered. Default 16777216. Errors: `MLLP_CONFIG` (0),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_segment_bytes(struct mllp_outbox_builder *builder,
                                                  uint64_t bytes);

/**
 * How often, in milliseconds (at least 1), the delivery thread looks for operator actions
 * made by other processes (a requeue, a released hold). Default 1000. Errors: `MLLP_CONFIG`
 * (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_poll_interval_ms(struct mllp_outbox_builder *builder,
                                                     uint32_t ms);

/**
 * 1 (the default): a thread delivers the messages; 0: they are only kept (a spool inspected or
 * delivered later). Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_builder_set_deliver(struct mllp_outbox_builder *builder,
                                            int on);

/**
 * Frees an outbox builder; outboxes opened with it are not affected. NULL is allowed and does
 * nothing.
 */
void mllp_outbox_builder_free(struct mllp_outbox_builder *builder);

/**
 * Opens (creating it if needed) the outbox in the directory `dir`, delivering to `address`
 * (`"host:port"`) with the builder's settings, recovers what a crash left (a message cut
 * short at the end is dropped: it was never acknowledged to its enqueuer) and starts
 * delivering. The builder is not changed. On success `*out` receives the handle; on failure
 * it is NULL and `mllp_last_error` gives the reason.
 *
 * Errors: `MLLP_LOCKED` (another outbox, in this or another process, has `dir` open: the
 * last-error text names its process), `MLLP_CORRUPT`, `MLLP_IO`, `MLLP_CONFIG`,
 * `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_open(const struct mllp_outbox_builder *builder,
                             const char *dir,
                             const char *address,
                             struct mllp_outbox **out);

/**
 * Enqueues one HL7 message (`msg`/`msg_len`, segments separated by CR, no framing bytes) and
 * returns once it is flushed to disk: from then on it is delivered even after a crash or a
 * power cut. Errors: `MLLP_FULL` (at once, nothing kept), `MLLP_HEADER` (no readable MSH, BHS
 * or FHS header), `MLLP_INVALID_ARGUMENT` (not UTF-8 when the sender settings name a
 * character set), `MLLP_IO` (cannot be written or flushed: nothing is kept), `MLLP_CLOSED`
 * (after `mllp_outbox_close`), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_enqueue(const struct mllp_outbox *outbox,
                                const uint8_t *msg,
                                size_t msg_len);

/**
 * Stores the counter `which` (`MLLP_OUTBOX_STAT_*`) in `*value`. Errors:
 * `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0), `MLLP_CLOSED` (after
 * `mllp_outbox_close`), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_get_stat(const struct mllp_outbox *outbox,
                                 mllp_outbox_stat which,
                                 uint64_t *value);

/**
 * Releases a hold (`MLLP_OUTBOX_HOLD`) at once: the held message is sent again. Errors:
 * `MLLP_IO`, `MLLP_CLOSED`, `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_resume(const struct mllp_outbox *outbox);

/**
 * Stops taking messages, lets the delivery thread finish the message in flight (bounded by
 * the sender's timeouts), flushes the delivery cursor and releases the directory. Pending
 * messages stay on disk for the next `mllp_outbox_open`. Later calls on the handle return
 * `MLLP_CLOSED`, except `mllp_outbox_free`; closing twice is `MLLP_OK`. Errors: `MLLP_IO`,
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_outbox_close(const struct mllp_outbox *outbox);

/**
 * Closes the outbox (as `mllp_outbox_close`, if not done yet) and frees the handle. NULL is
 * allowed and does nothing.
 */
void mllp_outbox_free(struct mllp_outbox *outbox);

/**
 * Lists the dead letters of the outbox directory `dir`, oldest first, into `*out` (NULL on
 * failure); works while an outbox (of this or another process) has the directory open.
 * Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_dead_letters(const char *dir,
                                     struct mllp_dead_letters **out);

/**
 * How many dead letters the list holds (0 for NULL).
 */
size_t mllp_dead_letters_count(const struct mllp_dead_letters *list);

/**
 * Copies part `part` (`MLLP_DEAD_LETTER_*`) of dead letter `index` (from 0) into `buf`
 * (capacity `cap`; NULL with 0 asks for the size) and stores its length in `*len`. Errors:
 * `MLLP_BUFFER_TOO_SMALL` (nothing written, `*len` is the size needed),
 * `MLLP_INVALID_ARGUMENT` (index out of range, unknown part), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_dead_letters_get(const struct mllp_dead_letters *list,
                                  size_t index,
                                  mllp_dead_letter_part part,
                                  uint8_t *buf,
                                  size_t cap,
                                  size_t *len);

/**
 * Frees a dead-letter list. NULL is allowed and does nothing.
 */
void mllp_dead_letters_free(struct mllp_dead_letters *list);

/**
 * Puts every dead letter of the outbox directory `dir` back in its queue (behind the pending
 * messages) and releases a hold; `*count` receives how many were requeued. An outbox that
 * has the directory open (in any process) takes them within its poll interval; otherwise the
 * next `mllp_outbox_open` does. Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT`,
 * `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_requeue_dead(const char *dir,
                                     size_t *count);

/**
 * Deletes every dead letter of the outbox directory `dir`; `*count` receives how many.
 * Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_outbox_purge_dead(const char *dir,
                                   size_t *count);

/**
 * A static NUL-terminated description of a result code, e.g. `"invalid configuration"`.
 *
 * Never NULL, for any value (an unknown code gives `"unknown result code"`); do not free it.
 * Thread-safe.
 */
const char *mllp_result_str(mllp_result code);

/**
 * Creates a sender builder with the defaults (those of the Rust `Sender::builder`): default
 * framing, messages sent as the bytes given, connect timeout 10 s, ACK timeout 30 s, write
 * timeout 10 s, no total timeout, 5 attempts with a backoff of 250 ms doubling to 30 s (half of
 * it random), TCP_NODELAY on, TCP keepalive on (300 s, 60 s, 5 probes), original HL7 acknowledgements (not MLLP release 2), AR/CR
 * returned at once, plain TCP. `*out` receives the builder (NULL on failure); free it with
 * `mllp_sender_builder_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_sender_builder_new(struct mllp_sender_builder **out);

/**
 * How long connecting may take, TLS handshake included, in milliseconds (at least 1).
 * Default 10000. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_connect_timeout_ms(struct mllp_sender_builder *builder,
                                                       uint32_t ms);

/**
 * How long the acknowledgement may take once the message is written, in milliseconds (at
 * least 1): wall time for the whole reply, however slowly its bytes arrive. Default 30000.
 * Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_ack_timeout_ms(struct mllp_sender_builder *builder,
                                                   uint32_t ms);

/**
 * How long writing the whole message may take, in milliseconds (at least 1): wall time,
 * however slowly the peer reads. Default 10000. Errors: `MLLP_CONFIG` (0),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_write_timeout_ms(struct mllp_sender_builder *builder,
                                                     uint32_t ms);

/**
 * Bounds one `mllp_sender_send` in all, every attempt and backoff delay included, in
 * milliseconds; 0 (the default) means no bound beyond the number of attempts. When it passes,
 * the send ends with `MLLP_NOT_DELIVERED` or `MLLP_UNCONFIRMED` (as the attempt under way
 * stood) and the last-error text names the total timeout; no attempt starts that could not
 * begin before it. Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_total_timeout_ms(struct mllp_sender_builder *builder,
                                                     uint32_t ms);

/**
 * The retry policy: the most attempts per message, the first included (1: no retry; 0: no
 * limit), the delay before the second attempt, and the longest delay, in milliseconds (not
 * below the first delay). The delay grows by the backoff factor after each attempt (see
 * `mllp_sender_builder_set_retry_backoff`). Defaults 5, 250, 30000. Errors: `MLLP_CONFIG`
 * (`max_backoff_ms` below `initial_backoff_ms`), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_retry(struct mllp_sender_builder *builder,
                                          uint32_t max_attempts,
                                          uint32_t initial_backoff_ms,
                                          uint32_t max_backoff_ms);

/**
 * How the delay between attempts grows and varies: each delay is the previous one times
 * `factor` (at least 1, finite), up to the longest delay; then a random part of up to
 * `jitter` of it (0 to 1) is taken off, so that senders cut off together do not come back
 * together. Defaults 2.0 and 0.5. Errors: `MLLP_CONFIG` (out of range, NaN),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_retry_backoff(struct mllp_sender_builder *builder,
                                                  double factor,
                                                  double jitter);

/**
 * Copies framing settings (start and end sequences, the largest reply accepted). `framing`
 * must not be NULL; it may be freed afterwards. Default: the defaults of `mllp_framing_new`.
 * Errors: `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_framing(struct mllp_sender_builder *builder,
                                            const struct mllp_framing *framing);

/**
 * NULL (the default): messages are sent as the bytes given. Otherwise a character set label
 * (`"UTF-8"`, `"ISO-8859-1"`, `"8859/1"`, `"windows-1252"`, ...): messages must then be UTF-8
 * and are encoded to this character set before sending. Errors: `MLLP_CHARSET` (unknown
 * label), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT` (`builder` NULL).
 */
mllp_result mllp_sender_builder_set_charset(struct mllp_sender_builder *builder,
                                            const char *label);

/**
 * 1 (the default): set TCP_NODELAY, so that each frame leaves at once; 0: leave Nagle's
 * algorithm on. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_nodelay(struct mllp_sender_builder *builder,
                                            int on);

/**
 * 1: MLLP release 2, the peer answers with commit blocks (0x06 / 0x15); a negative commit
 * block makes the sender send again within the retry policy. 0 (the default): HL7
 * acknowledgements. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_mllp2(struct mllp_sender_builder *builder,
                                          int on);

/**
 * 1: an AR or CR acknowledgement makes the sender send the message again within the retry
 * policy. 0 (the default): it is returned at once. AE and CE are always returned. Errors:
 * `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_resend_on_reject(struct mllp_sender_builder *builder,
                                                     int on);

/**
 * 1: connect with TLS, verifying the server certificate against the system's trusted roots
 * and the host name of the address. 0 (the default): plain TCP, which also forgets every TLS
 * setting made so far. The other `mllp_sender_builder_set_tls_*` setters switch TLS on
 * themselves. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_tls(struct mllp_sender_builder *builder,
                                        int on);

/**
 * Switches TLS on and trusts the CA certificates of the PEM file `path` as well as the
 * system's roots; may be called for several files. The file is read now. Errors: `MLLP_IO`
 * (cannot be read), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_tls_ca_file(struct mllp_sender_builder *builder,
                                                const char *path);

/**
 * Switches TLS on and verifies the server certificate against `name` instead of the host
 * name of the address. Errors: `MLLP_CONFIG` (empty), `MLLP_INVALID_ARGUMENT` (not UTF-8),
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_tls_server_name(struct mllp_sender_builder *builder,
                                                    const char *name);

/**
 * Switches TLS on and accepts no protocol older than `version`: 12 (TLS 1.2, the default) or
 * 13 (TLS 1.3). Errors: `MLLP_CONFIG` for another value, `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_tls_min_version(struct mllp_sender_builder *builder,
                                                    uint32_t version);

/**
 * Switches TLS on and presents a client certificate when the server asks for one: the PEM
 * certificate chain `cert_file` and its unencrypted PKCS#8 PEM key `key_file` (neither NULL),
 * read now. Replaces an identity set before (PEM or PKCS#12). Errors: `MLLP_IO` (a file
 * cannot be read), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a certificate or key that
 * cannot be used is `MLLP_TLS` from `mllp_sender_builder_build`.
 */
mllp_result mllp_sender_builder_set_tls_identity_pem(struct mllp_sender_builder *builder,
                                                     const char *cert_file,
                                                     const char *key_file);

/**
 * As `mllp_sender_builder_set_tls_identity_pem`, from a PKCS#12 archive (`.p12` / `.pfx`,
 * not NULL) holding the certificate, its chain and its key, with `password` (NULL: empty). A
 * wrong password is `MLLP_TLS` from `mllp_sender_builder_build`.
 */
mllp_result mllp_sender_builder_set_tls_identity_pkcs12(struct mllp_sender_builder *builder,
                                                        const char *file,
                                                        const char *password);

/**
 * 1: switches TLS on and accepts any server certificate (expired, self-signed, other name).
 * This removes TLS's protection against interception; for tests only. 0 (the default):
 * verify. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_builder_set_tls_danger_accept_invalid_certs(struct mllp_sender_builder *builder,
                                                                    int on);

/**
 * Creates a sender to `address` (`"host:port"`, e.g. `"10.1.2.3:2575"`, `"[::1]:2575"`) with
 * the builder's settings. The builder is not changed and may build more senders, or be
 * freed. Nothing is connected yet: the first send connects (and reconnects whenever needed).
 * On success `*out` receives the handle, to be freed with `mllp_sender_free`; on failure
 * `*out` is NULL and `mllp_last_error` gives the reason.
 *
 * Errors: `MLLP_CONFIG` (address without host or port), `MLLP_TLS` (a certificate or key
 * cannot be used, a wrong PKCS#12 password, TLS in a library built without it),
 * `MLLP_INVALID_ARGUMENT` (address not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
 */
mllp_result mllp_sender_builder_build(const struct mllp_sender_builder *builder,
                                      const char *address,
                                      struct mllp_sender **out);

/**
 * Frees a sender builder; senders built from it are not affected. NULL is allowed and does
 * nothing.
 */
void mllp_sender_builder_free(struct mllp_sender_builder *builder);

/**
 * Stores the sender's counter `which` (`MLLP_SENDER_STAT_*`, counted since the sender was
 * created) in `*value`. Errors: `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0),
 * `MLLP_INVALID_STATE` (in use by another thread), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_get_stat(const struct mllp_sender *sender,
                                 mllp_sender_stat which,
                                 uint64_t *value);

/**
 * Sends one HL7 message and waits for its acknowledgement.
 *
 * `msg`/`msg_len` is the message (segments separated by CR, without framing bytes). It is
 * sent as it is, or, when the builder named a character set, read as UTF-8 and encoded to it. The
 * sender connects if needed, writes the message, and reads replies until the one whose MSA-2
 * matches the message's control ID (MSH-10); on a lost connection or an ACK timeout it
 * reconnects and sends again within the retry policy (so a message may arrive twice; the
 * control ID stays the same).
 *
 * On return `*code_out` is the acknowledgement's code (`MLLP_ACK_*`, `MLLP_ACK_NONE` when none
 * arrived) and `*ack_len` the acknowledgement's length in bytes (0 when none arrived).
 * `ack_out` (capacity `ack_cap`) receives the acknowledgement's bytes (the reply frame's
 * payload, not NUL-terminated) when they fit, that is when `*ack_len <= ack_cap`; otherwise
 * nothing is written there and `mllp_sender_last_ack` copies them afterwards, into a buffer of
 * any size. `ack_out` may be NULL with `ack_cap` 0 when only the code is wanted.
 *
 * Returns:
 * * `MLLP_OK`: an acknowledgement arrived, so the message was delivered: positive or
 *   negative, see `*code_out` (AE/AR are answers, not errors). Never send it again because
 *   of this call. Its bytes are in `ack_out` when `*ack_len <= ack_cap`.
 * * `MLLP_NOT_DELIVERED`: no acknowledgement within the retry policy, and the message was
 *   never completely written: sending it again cannot create a duplicate.
 * * `MLLP_UNCONFIRMED`: no acknowledgement within the retry policy, but the message was
 *   written at least once: the peer may have it.
 * * Before anything is sent: `MLLP_HEADER` (no readable MSH, or an empty control ID),
 *   `MLLP_FRAME_PAYLOAD_CONTAINS_END`, `MLLP_CHARSET` (not UTF-8, or a character the
 *   configured character set lacks), `MLLP_NULL_ARGUMENT`, `MLLP_INVALID_STATE` (the sender
 *   is in use by another thread).
 *
 * Failures set the text of `mllp_last_error` (for delivery failures: the number of
 * attempts and the last attempt's error). Blocks for at most the retry policy's attempts and
 * their timeouts and delays.
 */
mllp_result mllp_sender_send(struct mllp_sender *sender,
                             const uint8_t *msg,
                             size_t msg_len,
                             uint8_t *ack_out,
                             size_t ack_cap,
                             size_t *ack_len,
                             mllp_ack_code *code_out);

/**
 * Copies the last acknowledgement this sender received into `buf` (capacity `cap`, NULL only
 * with 0) and stores its length in `*len` (0 when none was received yet).
 *
 * For after `mllp_sender_send` reported an acknowledgement longer than its buffer
 * (`*ack_len > ack_cap`). Returns `MLLP_OK`,
 * `MLLP_BUFFER_TOO_SMALL` (nothing written, `*len` is the size needed), `MLLP_INVALID_STATE`,
 * `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_last_ack(const struct mllp_sender *sender,
                                 uint8_t *buf,
                                 size_t cap,
                                 size_t *len);

/**
 * Closes the sender's connection, if any; the next send connects again. Returns `MLLP_OK`,
 * `MLLP_INVALID_STATE` (in use by another thread), `MLLP_NULL_ARGUMENT`.
 */
mllp_result mllp_sender_close(struct mllp_sender *sender);

/**
 * Closes the connection and frees the sender. NULL is allowed and does nothing.
 */
void mllp_sender_free(struct mllp_sender *sender);

/**
 * Cuts `data`/`len` (the contents of a file) into HL7 messages and calls `callback` with each:
 * a new message starts at each segment beginning with MSH; blank lines and MLLP framing bytes
 * saved with captured traffic (0x0B, 0x1C) are dropped; a batch is one message unless
 * `MLLP_SPLIT_BATCH`; endings are fixed with `MLLP_SPLIT_NORMALISE_ENDINGS`. `userdata` is
 * passed to the callback untouched. `*count` (when `count` is not NULL) is the number of
 * messages handed to the callback.
 *
 * Returns `MLLP_OK` (also when the callback stopped early, or the data held no message),
 * `MLLP_INVALID_ARGUMENT` (an unknown flag), `MLLP_NULL_ARGUMENT` (`data` or `callback` NULL).
 * Thread-safe; the callback runs on the calling thread.
 */
mllp_result mllp_split_messages(const uint8_t *data,
                                size_t len,
                                mllp_split_flags flags,
                                mllp_split_cb callback,
                                void *userdata,
                                size_t *count);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* MLLP_H */
