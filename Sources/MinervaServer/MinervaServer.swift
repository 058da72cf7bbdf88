// MinervaServer: the event loop, the HTTP/1.1 server and the Minerva transports.
