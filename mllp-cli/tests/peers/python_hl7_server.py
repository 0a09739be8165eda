"""python-hl7's asyncio MLLP server (hl7.mllp.start_hl7_server) on 127.0.0.1, a port the
system picks, answering each message with python-hl7's own create_ack(). Prints the port and
runs until its standard input closes."""
import asyncio, sys, threading
import hl7
from hl7.mllp import start_hl7_server


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def main():
    stop = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set_result, None)), daemon=True).start()
    async with await start_hl7_server(handle, host="127.0.0.1", port=0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await stop


asyncio.run(main())
