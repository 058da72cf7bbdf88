// The request decoder alone, behind a small public face, for micro-benchmarks (malloc counting) and fuzzing.
import MinervaIO

/// Feeds bytes through the server's request decoder and counts the requests it completes.
@_spi(Benchmarks) public final class HTTPRequestDecoderProbe {
    private final class Counter: HTTPRequestDecoderDelegate {
        var requests = 0
        var bodyBytes = 0
        var failure: Int?

        func decoderDidReceiveRequest(_ decoder: HTTPRequestDecoder) -> Bool {
            requests += 1
            bodyBytes += decoder.body.count
            return true
        }

        func decoderWantsContinue(_ decoder: HTTPRequestDecoder) {}

        func decoderDidFail(_ decoder: HTTPRequestDecoder, status: Int) { failure = status }
    }

    private let limits: HTTPDecoderLimits
    private var decoder: HTTPRequestDecoder
    private let counter = Counter()

    /// Creates a probe with the configuration's request limits.
    public init(configuration: MinervaHTTPServerConfiguration = MinervaHTTPServerConfiguration()) {
        limits = HTTPDecoderLimits(
            maxHeaderBytes: configuration.maxHeaderBytes, maxHeaderCount: configuration.maxHeaderCount,
            maxURLBytes: configuration.maxURLBytes, maxBodyBytes: configuration.maxBodyBytes)
        decoder = HTTPRequestDecoder(limits: limits)
    }

    /// Feeds the next bytes of the input stream.
    /// - Returns: the number of requests completed so far.
    @discardableResult
    public func feed(_ bytes: UnsafeRawBufferPointer) -> Int {
        decoder.feed(bytes, delegate: counter)
        return counter.requests
    }

    /// Requests completed so far.
    public var requestCount: Int { counter.requests }

    /// Body bytes received in completed requests so far.
    public var bodyByteCount: Int { counter.bodyBytes }

    /// The status the server would answer if the input was rejected (400, 413, 414, 431), else nil.
    public var failureStatus: Int? { counter.failure }

    /// Starts over with a fresh decoder (counts are kept).
    public func reset() { decoder = HTTPRequestDecoder(limits: limits) }
}
