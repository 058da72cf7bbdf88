"""The peer users would pick instead, for the side-by-side echo figures of run-load.sh: python-socketio (Debian's
python3-socketio, on aiohttp), one process, answering every `echo` event with the same event and data.

    /usr/bin/python3 Benchmarks/peers/socketio_echo.py PORT
"""
import sys

import socketio
from aiohttp import web

server = socketio.AsyncServer(async_mode='aiohttp', cors_allowed_origins='*')
app = web.Application()
server.attach(app)


@server.on('echo')
async def echo(sid, data):
    await server.emit('echo', data, to=sid)


async def healthz(_request):
    return web.Response(text='ok')


app.router.add_get('/healthz', healthz)

if __name__ == '__main__':
    web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None)
