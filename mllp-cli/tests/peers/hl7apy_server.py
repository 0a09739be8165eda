"""hl7apy's MLLPServer on 127.0.0.1, a port the system picks, with a handler for ADT^A01 that
answers AA with an ACK built with hl7apy (applications and facilities swapped, MSA-2 =
MSH-10, as its documentation's examples do). Prints
the port and runs until its standard input closes."""
import itertools, sys, threading
from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message


ids = itertools.count(1)


class Ack(AbstractHandler):
    def reply(self):
        msg = parse_message(self.incoming_message, find_groups=False)
        res = Message("ACK", version=msg.msh.msh_12.value)
        res.msh.msh_3 = msg.msh.msh_5.value
        res.msh.msh_4 = msg.msh.msh_6.value
        res.msh.msh_5 = msg.msh.msh_3.value
        res.msh.msh_6 = msg.msh.msh_4.value
        res.msh.msh_9 = "ACK^A01^ACK"
        res.msh.msh_10 = "ACK%d" % next(ids)
        res.msh.msh_11 = msg.msh.msh_11.value
        res.msa.msa_1 = "AA"
        res.msa.msa_2 = msg.msh.msh_10.value
        return res.to_mllp()


# hl7apy routes by the whole MSH-9 (ADT^A01^ADT_A01 for the test messages).
server = MLLPServer("127.0.0.1", 0, {"ADT^A01^ADT_A01": (Ack,), "ADT^A01": (Ack,)}, timeout=10)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
server.shutdown()
