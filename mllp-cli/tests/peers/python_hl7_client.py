"""python-hl7's MLLPClient (hl7.client, what its mllp_send tool uses): sends the messages of
the file given (separated by blank lines) to 127.0.0.1:PORT, one at a time, each after
send_message() returned its reply, and prints each reply."""
import sys
from hl7.client import MLLPClient

port, path = int(sys.argv[1]), sys.argv[2]
messages = [m for m in open(path, encoding="utf-8").read().split("\n\n") if m.strip()]
with MLLPClient("127.0.0.1", port) as client:
    for text in messages:
        print(repr(client.send_message(text.strip("\n").replace("\n", "\r") + "\r")), flush=True)
