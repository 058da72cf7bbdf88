// Static responses: in-memory bytes or files, with Content-Type, Cache-Control, ETag and If-None-Match.
internal import CShims
import MinervaIO

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An immutable response body with precomputed headers; serves 200 or 304 (If-None-Match). `Sendable`: one content
/// may serve every loop.
public final class MinervaStaticContent: @unchecked Sendable {
    // @unchecked: every stored property is a `let` set in `init`; the two byte storages are never written afterwards
    // (responses copy them or queue them by reference, read-only).
    let body: ByteStorage
    let headerBlock: ByteStorage
    /// The entity tag, quoted.
    public let etag: String
    private let etagBytes: [UInt8]
    /// Bodies up to this size are copied into the output buffer; larger ones are queued by reference.
    static let copyLimit = 16 * 1024

    /// Creates content from bytes.
    /// - Parameters:
    ///   - bytes: the body.
    ///   - contentType: the Content-Type value.
    ///   - cacheControl: the Cache-Control value, or nil for none.
    public init(bytes: [UInt8], contentType: String, cacheControl: String? = "no-cache") {
        body = ByteStorage(capacity: bytes.count)
        body.append(bytes)
        etag = "\"" + fnv1aHex(bytes) + "\""
        etagBytes = Array(etag.utf8)
        headerBlock = ByteStorage(capacity: 128)
        headerBlock.append("Content-Type: \(contentType)\r\n")
        if let cacheControl { headerBlock.append("Cache-Control: \(cacheControl)\r\n") }
        headerBlock.append("ETag: \(etag)\r\n")
    }

    /// Creates content from a string's UTF-8 bytes.
    public convenience init(text: String, contentType: String, cacheControl: String? = "no-cache") {
        self.init(bytes: Array(text.utf8), contentType: contentType, cacheControl: cacheControl)
    }

    /// Reads a file once.
    /// - Parameters:
    ///   - path: the file to read.
    ///   - contentType: the Content-Type, or nil to guess from the file extension.
    ///   - cacheControl: the Cache-Control value, or nil for none.
    /// - Throws: `MinervaHTTPServerError` with code `.fileUnreadable`.
    public convenience init(file path: String, contentType: String? = nil, cacheControl: String? = "no-cache") throws {
        guard let bytes = readWholeFile(path) else {
            throw MinervaHTTPServerError(code: .fileUnreadable, message: "cannot read \(path)")
        }
        self.init(bytes: bytes, contentType: contentType ?? mimeType(forPath: path), cacheControl: cacheControl)
    }

    /// The body size in bytes.
    public var count: Int { body.count }

    /// A handler that serves this content.
    public var handler: MinervaHTTPRouter.Handler {
        { [self] request, response in response.send(self, for: request) }
    }

    func matches(ifNoneMatch value: UnsafeRawBufferPointer) -> Bool {
        // A list of entity tags, or "*"; weak comparison (W/ prefixes ignored).
        var i = 0
        let n = value.count
        while i < n {
            while i < n && (value[i] == 32 || value[i] == 9 || value[i] == 44) { i += 1 }
            if i < n && value[i] == UInt8(ascii: "*") { return true }
            if i + 1 < n && value[i] == UInt8(ascii: "W") && value[i + 1] == UInt8(ascii: "/") { i += 2 }
            let start = i
            while i < n && value[i] != 44 { i += 1 }
            var end = i
            while end > start && (value[end - 1] == 32 || value[end - 1] == 9) { end -= 1 }
            if end - start == etagBytes.count
                && etagBytes.withUnsafeBytes({ memcmp($0.baseAddress!, value.baseAddress! + start, end - start) }) == 0
            {
                return true
            }
        }
        return false
    }
}

extension MinervaHTTPResponse {
    /// Sends static content: 304 if the request's If-None-Match matches its ETag, else 200 with the body.
    /// - Parameters:
    ///   - content: the content.
    ///   - request: the request being answered.
    public func send(_ content: MinervaStaticContent, for request: MinervaHTTPRequest) {
        appendHeaderBlock(content.headerBlock)
        if let inm = request.headerBytes("If-None-Match"), content.matches(ifNoneMatch: inm) {
            status = 304
            end()
            return
        }
        let size = content.body.count
        writeHead(contentLength: size)
        if isHeadRequest || size == 0 {
            end()
            return
        }
        if size <= MinervaStaticContent.copyLimit {
            write(content.body.bytes)
        } else if let connection {
            remaining = 0
            connection.enqueueShared(content.body, start: 0, end: size)
        }
        end()
    }
}

/// Serves files under a directory, safe against `..` traversal.
public final class MinervaStaticDirectoryHandler: Sendable {
    private let root: String
    private let prefix: [UInt8]
    private let cacheControl: String?

    /// Creates a handler for URLs `urlPrefix` + relative path, mapped to `root` + relative path.
    /// - Parameters:
    ///   - root: the directory.
    ///   - urlPrefix: the mounted prefix, e.g. "/static/".
    ///   - cacheControl: the Cache-Control value, or nil for none.
    public init(root: String, urlPrefix: String, cacheControl: String? = "no-cache") {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        self.prefix = Array(urlPrefix.utf8)
        self.cacheControl = cacheControl
    }

    /// The handler to mount on a router.
    public var handler: MinervaHTTPRouter.Handler {
        { [self] request, response in self.handle(request, response) }
    }

    /// Maps a request path to a file path relative to the root, or nil if it is unsafe or outside the prefix.
    public func relativePath(forRequestPath path: [UInt8]) -> String? {
        guard path.count >= prefix.count, Array(path[..<prefix.count]) == prefix else { return nil }
        guard let decoded = percentDecode(path[prefix.count...]) else { return nil }
        var segments: [String] = []
        for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if segment.contains(0) || segment.contains(UInt8(ascii: "\\")) { return nil }
            if segment.elementsEqual([UInt8(ascii: ".")]) || segment.elementsEqual([46, 46]) { return nil }
            if segment.first == UInt8(ascii: ".") { return nil }  // no hidden files
            segments.append(String(decoding: segment, as: UTF8.self))
        }
        if segments.isEmpty || decoded.last == UInt8(ascii: "/") { segments.append("index.html") }
        return segments.joined(separator: "/")
    }

    private func handle(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        guard request.method == .GET || request.method == .HEAD else {
            response.status = 405
            response.setHeader("Allow", "GET, HEAD")
            response.end("Method Not Allowed\n")
            return
        }
        guard let relative = relativePath(forRequestPath: Array(request.pathBytes)),
            let bytes = readWholeFile(root + "/" + relative)
        else {
            response.status = 404
            response.setHeader("Content-Type", "text/plain")
            response.end("Not Found\n")
            return
        }
        let content = MinervaStaticContent(
            bytes: bytes, contentType: mimeType(forPath: relative), cacheControl: cacheControl)
        response.send(content, for: request)
    }
}

private func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = bytes.startIndex
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: return b - 48
        case 65...70: return b - 55
        case 97...102: return b - 87
        default: return nil
        }
    }
    while i < bytes.endIndex {
        let b = bytes[i]
        if b == UInt8(ascii: "%") {
            guard i + 2 < bytes.endIndex, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) else { return nil }
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(b)
            i += 1
        }
    }
    return out
}

package func readWholeFile(_ path: String) -> [UInt8]? {
    var pointer: UnsafeMutableRawPointer? = nil
    let n = cshims_read_file(path, &pointer)
    guard n >= 0, let pointer else { return nil }
    defer { free(pointer) }
    return Array(UnsafeRawBufferPointer(start: pointer, count: n))
}

private func fnv1aHex(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        hash ^= UInt64(b)
        hash = hash &* 0x100_0000_01b3
    }
    let s = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// A Content-Type for a file name, by extension.
package func mimeType(forPath path: String) -> String {
    let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
    switch ext {
    case "html", "htm": return "text/html; charset=utf-8"
    case "css": return "text/css; charset=utf-8"
    case "js", "mjs": return "text/javascript; charset=utf-8"
    case "json": return "application/json"
    case "txt": return "text/plain; charset=utf-8"
    case "svg": return "image/svg+xml"
    case "png": return "image/png"
    case "jpg", "jpeg": return "image/jpeg"
    case "gif": return "image/gif"
    case "ico": return "image/x-icon"
    case "wasm": return "application/wasm"
    case "map": return "application/json"
    default: return "application/octet-stream"
    }
}
