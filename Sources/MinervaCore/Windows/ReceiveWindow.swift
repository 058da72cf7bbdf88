// The receive window shared by all transports of a stream (PROTOCOL.md 6.6): it turns numbered strings that
// arrive with gaps, duplicates and reordering into an in-order sequence, within a bounded cache.

/// The limits of a ``ReceiveWindow``.
public struct ReceiveWindowLimits: Sendable, Equatable {
    /// The most strings cached above a gap (original: 50).
    public var maxUndeliveredStrings: Int
    /// The most estimated bytes cached above a gap (original: 1 MiB).
    public var maxUndeliveredBytes: Int
    /// The fixed part of the per-string size estimate (server: 30; the JavaScript client uses 21 + 2 x length).
    public var overheadPerString: Int

    /// The server's limits: 50 strings, 1048576 estimated bytes, estimate 30 + bytes.
    public static let server = ReceiveWindowLimits(
        maxUndeliveredStrings: 50, maxUndeliveredBytes: 1_048_576, overheadPerString: 30)

    /// Creates limits.
    public init(maxUndeliveredStrings: Int, maxUndeliveredBytes: Int, overheadPerString: Int) {
        self.maxUndeliveredStrings = maxUndeliveredStrings
        self.maxUndeliveredBytes = maxUndeliveredBytes
        self.overheadPerString = overheadPerString
    }
}

/// A receive window: delivers strings in sequence-number order and reports what it holds as a SACK.
public struct ReceiveWindow: Sendable {
    /// The limits in force.
    public var limits: ReceiveWindowLimits
    /// The highest N such that every string 0...N was delivered; -1 initially.
    public private(set) var lastAck: Int64 = -1
    // Cached strings above a gap, sorted by sequence number (at most `maxUndeliveredStrings` of them).
    private var cached: [(seq: Int64, bytes: [UInt8])] = []
    /// The current estimated size of the cache.
    public private(set) var cachedBytesEstimate = 0

    /// Creates an empty window.
    /// - Parameter limits: the cache limits (default: the server's).
    public init(limits: ReceiveWindowLimits = .server) {
        self.limits = limits
    }

    /// The number of strings cached above a gap.
    public var cachedCount: Int { cached.count }

    /// The window's SACK: `lastAck` and the cached sequence numbers, ascending.
    public var sack: SACK { SACK(ackNumber: lastAck, sackList: cached.map(\.seq)) }

    /// Whether this window's SACK equals `other` (without building an array).
    /// - Parameter other: a SACK to compare with.
    /// - Returns: true if ack number and list are identical, element by element.
    public func sackEquals(_ other: SACK) -> Bool {
        guard other.ackNumber == lastAck, other.sackList.count == cached.count else { return false }
        for (index, item) in cached.enumerated() where other.sackList[index] != item.seq {
            return false
        }
        return true
    }

    /// Processes one batch of numbered strings, sorted by sequence number.
    ///
    /// A string that is next in order is delivered, together with any cached strings that become
    /// contiguous; a duplicate (at or below `lastAck`, or already cached) is ignored; a string above a gap is
    /// cached unless a limit would be exceeded, in which case processing stops ("limit hit").
    /// - Parameters:
    ///   - batch: (sequence number, bytes) pairs, ascending.
    ///   - deliver: receives each deliverable string, in order (the slice is valid only during the call).
    /// - Returns: true if a limit was hit (the rest of the batch was not processed).
    public mutating func receive<S: Sequence>(
        _ batch: S, deliver: (ArraySlice<UInt8>) -> Void
    ) -> Bool where S.Element == (Int64, ArraySlice<UInt8>) {
        for (seq, bytes) in batch {
            if seq == lastAck + 1 {
                lastAck = seq
                deliver(bytes)
                releaseContiguous(deliver)
            } else if seq <= lastAck {
                continue
            } else {
                let (index, found) = position(of: seq)
                if found { continue }  // already cached: ignore (recommendation of PROTOCOL.md 6.6)
                let estimate = limits.overheadPerString + bytes.count
                if cached.count >= limits.maxUndeliveredStrings
                    || cachedBytesEstimate + estimate > limits.maxUndeliveredBytes
                {
                    return true
                }
                cached.insert((seq, Array(bytes)), at: index)
                cachedBytesEstimate += estimate
            }
        }
        return false
    }

    private mutating func releaseContiguous(_ deliver: (ArraySlice<UInt8>) -> Void) {
        var released = 0
        while released < cached.count, cached[released].seq == lastAck + 1 {
            let item = cached[released]
            lastAck = item.seq
            cachedBytesEstimate -= limits.overheadPerString + item.bytes.count
            deliver(item.bytes[...])
            released += 1
        }
        if released > 0 { cached.removeFirst(released) }
    }

    // Binary search: the insertion index of `seq` and whether it is already cached.
    private func position(of seq: Int64) -> (Int, Bool) {
        var low = 0
        var high = cached.count
        while low < high {
            let mid = (low + high) / 2
            if cached[mid].seq < seq { low = mid + 1 } else { high = mid }
        }
        return (low, low < cached.count && cached[low].seq == seq)
    }
}
