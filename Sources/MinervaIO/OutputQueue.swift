// A connection's pending output: copied bytes in one scratch buffer plus shared immutable buffers queued by
// reference, written with writev and compacted as it drains.
internal import CShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A range of bytes waiting to be written.
package struct OutputSegment {
    let storage: ByteStorage
    var start: Int
    var end: Int
}

/// Bytes queued for one socket.
package final class OutputQueue {
    @exclusivity(unchecked) private var segments: [OutputSegment] = []
    private let scratch: ByteStorage
    /// Bytes queued and not yet written.
    @exclusivity(unchecked) package private(set) var count = 0

    package init(capacity: Int) {
        scratch = ByteStorage(capacity: capacity)
        segments.reserveCapacity(8)
    }

    /// Appends bytes by letting `body` append to the scratch buffer.
    /// - Returns: the number of bytes added.
    @inline(__always) package func append(_ body: (ByteStorage) -> Void) -> Int {
        let before = scratch.count
        body(scratch)
        let added = scratch.count - before
        if added == 0 { return 0 }
        if let last = segments.last, last.storage === scratch, last.end == before {
            segments[segments.count - 1].end = scratch.count
        } else {
            segments.append(OutputSegment(storage: scratch, start: before, end: scratch.count))
        }
        count += added
        return added
    }

    /// Queues a range of an immutable buffer without copying it.
    package func appendShared(_ storage: ByteStorage, start: Int, end: Int) {
        if end <= start { return }
        segments.append(OutputSegment(storage: storage, start: start, end: end))
        count += end - start
    }

    /// One writev of as much as fits in `iovecs`.
    /// - Returns: bytes written (>= 0) or a negated errno.
    func writeOnce(fd: Int32, iovecs: UnsafeMutablePointer<iovec>, maxIovecs: Int) -> Int {
        var n = 0
        for segment in segments {
            if n == maxIovecs { break }
            iovecs[n] = iovec(iov_base: segment.storage.base + segment.start, iov_len: segment.end - segment.start)
            n += 1
        }
        let written = cshims_writev(fd, iovecs, Int32(n))
        if written > 0 { consume(written) }
        return written
    }

    private func consume(_ written: Int) {
        var left = written
        count -= written
        var drop = 0
        while left > 0 {
            let size = segments[drop].end - segments[drop].start
            if left >= size {
                left -= size
                drop += 1
            } else {
                segments[drop].start += left
                left = 0
            }
        }
        if drop > 0 { segments.removeFirst(drop) }
        if segments.isEmpty {
            scratch.count = 0
        } else if segments.count == 1 && segments[0].storage === scratch && segments[0].start >= 65536 {
            let start = segments[0].start
            scratch.removeFirst(start)
            segments[0].start = 0
            segments[0].end -= start
        }
    }

    /// Shrinks an empty queue's copy buffer to at most `limit` bytes, and its segment list if it grew large.
    func trim(toCapacity limit: Int) {
        guard segments.isEmpty else { return }
        scratch.trim(toCapacity: limit)
        if segments.capacity > 64 { segments = [] }
    }

    /// Drops everything queued.
    package func removeAll() {
        segments.removeAll(keepingCapacity: true)
        scratch.count = 0
        count = 0
    }
}
