// Whole responses for the load generator, cut by MinervaHTTP's response decoder (the package's one http-parser
// wrapper): the load tool only collects each body.
@_spi(MinervaTools) import MinervaHTTP

/// One complete HTTP response.
struct HTTPResponse {
    /// The status code.
    var status: Int
    /// The body (de-chunked).
    var body: [UInt8]
    /// True when the connection may not carry another request (`Connection: close`, HTTP/1.0).
    var close: Bool
}

/// Accumulates bytes and hands out complete responses (pipelined ones in order).
struct HTTPResponseParser {
    /// A response the decoder could not understand.
    struct Malformed: Error {
        /// What was wrong.
        var reason: String
    }

    private let decoder = HTTPResponseDecoder()
    private var status = 0
    private var body: [UInt8] = []
    private var complete: [HTTPResponse] = []
    private var nextComplete = 0

    /// Decodes received bytes; complete responses wait for `next()`.
    mutating func append(_ bytes: ArraySlice<UInt8>) throws(Malformed) {
        var status = self.status
        var body = self.body
        var complete = self.complete
        do {
            try bytes.withUnsafeBytes { raw in
                try decoder.feed(raw) { event in
                    switch event {
                    case .head(let code, _): status = code
                    case .body(let chunk): body.append(contentsOf: chunk)
                    case .end(let keepAlive):
                        complete.append(HTTPResponse(status: status, body: body, close: !keepAlive))
                        body.removeAll(keepingCapacity: true)
                    }
                }
            }
        } catch let error as HTTPResponseDecodingError {
            throw Malformed(reason: error.reason)
        } catch {
            throw Malformed(reason: "\(error)")
        }
        self.status = status
        self.body = body
        self.complete = complete
    }

    /// Returns the next complete response, or nil if more bytes are needed.
    mutating func next() -> HTTPResponse? {
        guard nextComplete < complete.count else {
            complete.removeAll(keepingCapacity: true)
            nextComplete = 0
            return nil
        }
        nextComplete += 1
        return complete[nextComplete - 1]
    }
}
