@_exported import protocol MinervaCore.MinervaProducer
// What `import MinervaServer` brings besides the endpoint, on purpose: the application API of MinervaCore (a stream,
// its handler, producers, QAN) and the parts of MinervaHTTP and MinervaIO an embedder needs to run the endpoint
// (server, configuration, router, request, response, loop). Everything else of those modules (frame codecs, the
// engine's internals, connections, timers) needs its own `import`.
@_exported import class MinervaCore.MinervaServerEngine
@_exported import struct MinervaCore.MinervaStreamError
@_exported import protocol MinervaCore.MinervaStreamHandler
@_exported import class MinervaCore.QANHelper
@_exported import enum MinervaCore.QANIncoming
@_exported import struct MinervaCore.QANKnownError
@_exported import class MinervaCore.QANResponder
@_exported import struct MinervaCore.ServerEngineConfiguration
@_exported import class MinervaCore.ServerStream
@_exported import struct MinervaCore.StreamID
@_exported import class MinervaCore.SubprotocolDispatcher
@_exported import struct MinervaCore.TransportInfo
@_exported import struct MinervaHTTP.MinervaHTTPMethod
@_exported import struct MinervaHTTP.MinervaHTTPRequest
@_exported import class MinervaHTTP.MinervaHTTPResponse
@_exported import class MinervaHTTP.MinervaHTTPRouter
@_exported import class MinervaHTTP.MinervaHTTPServer
@_exported import struct MinervaHTTP.MinervaHTTPServerConfiguration
@_exported import struct MinervaHTTP.MinervaHTTPServerError
@_exported import class MinervaIO.MinervaEventLoop
@_exported import struct MinervaIO.MinervaIOError
@_exported import class MinervaIO.MinervaLoopTimer
