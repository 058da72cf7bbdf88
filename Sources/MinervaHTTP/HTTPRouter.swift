// Prefix routing: an application mounts its handlers (and later the Minerva endpoint) side by side.
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Routes requests by path (exact or prefix) and method; answers 404 and 405 itself.
public final class MinervaHTTPRouter: @unchecked Sendable {
    // @unchecked: routes are added before the server starts and only read afterwards (from every loop).
    /// A request handler: answer through the response now, or keep it and answer later on the same loop.
    public typealias Handler = @Sendable (MinervaHTTPRequest, MinervaHTTPResponse) -> Void

    private struct Route {
        let path: [UInt8]
        let isPrefix: Bool
        let methods: [MinervaHTTPMethod]?
        let allow: String
        let handler: Handler
    }

    private var routes: [Route] = []

    /// Creates an empty router (every request gets 404).
    public init() {}

    /// Routes requests whose path starts with `prefix`.
    /// - Parameters:
    ///   - prefix: the path prefix, e.g. "/_minerva/".
    ///   - methods: the methods accepted (nil: any); others get 405.
    ///   - handler: the handler.
    public func mount(_ prefix: String, methods: [MinervaHTTPMethod]? = nil, _ handler: @escaping Handler) {
        add(
            Route(
                path: Array(prefix.utf8), isPrefix: true, methods: methods, allow: allowValue(methods), handler: handler
            ))
    }

    /// Routes requests whose path is exactly `path` (query ignored).
    /// - Parameters:
    ///   - path: the path, e.g. "/healthz".
    ///   - methods: the methods accepted (nil: any); others get 405. Default GET and HEAD.
    ///   - handler: the handler.
    public func route(_ path: String, methods: [MinervaHTTPMethod]? = [.GET, .HEAD], _ handler: @escaping Handler) {
        add(
            Route(
                path: Array(path.utf8), isPrefix: false, methods: methods, allow: allowValue(methods), handler: handler)
        )
    }

    private func allowValue(_ methods: [MinervaHTTPMethod]?) -> String {
        methods?.map(\.name).joined(separator: ", ") ?? ""
    }

    private func add(_ route: Route) {
        routes.append(route)
        // Exact routes first, then longer prefixes first.
        routes.sort { a, b in
            if a.isPrefix != b.isPrefix { return !a.isPrefix }
            return a.path.count > b.path.count
        }
    }

    func dispatch(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        let path = request.pathBytes
        var disallowed: Int? = nil
        for i in routes.indices {
            let route = routes[i]
            guard matches(path, route) else { continue }
            if let methods = route.methods, !methods.contains(request.method) {
                if disallowed == nil { disallowed = i }
                continue
            }
            route.handler(request, response)
            return
        }
        if let i = disallowed {
            response.status = 405
            response.setHeader("Allow", routes[i].allow)
            response.setHeader("Content-Type", "text/plain")
            response.end("Method Not Allowed\n")
            return
        }
        response.status = 404
        response.setHeader("Content-Type", "text/plain")
        response.end("Not Found\n")
    }

    @inline(__always) private func matches(_ path: UnsafeRawBufferPointer, _ route: Route) -> Bool {
        let n = route.path.count
        if route.isPrefix ? path.count < n : path.count != n { return false }
        if n == 0 { return true }
        return route.path.withUnsafeBytes { memcmp($0.baseAddress!, path.baseAddress!, n) == 0 }
    }
}
