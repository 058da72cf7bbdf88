import MinervaCore
import Testing

@Suite struct SendQueueTests {
    @Test func numbersConsecutivelyAndAccountsBytes() {
        var queue = SendQueue()
        let r9 = queue.append(bytes("a"))
        #expect(r9 == 0)
        let r10 = queue.append(bytes("bb"))
        #expect(r10 == 1)
        let r11 = queue.append(bytes("ccc"))
        #expect(r11 == 2)
        #expect(queue.count == 3)
        #expect(queue.queuedBytes == 6)
        #expect(queue.highestAssigned == 2)
        #expect(queue.sequenceNumbers == [0, 1, 2])
    }

    @Test func sackRemovesAckedAndListed() {
        var queue = SendQueue()
        for index in 0..<12 { queue.append(bytes("s\(index)")) }
        let r1 = queue.process(SACK(ackNumber: -1, sackList: [1, 3, 5, 9]))
        #expect(r1)
        #expect(queue.sequenceNumbers == [0, 2, 4, 6, 7, 8, 10, 11])
        let r2 = queue.process(SACK(ackNumber: 4, sackList: [7]))
        #expect(r2)
        #expect(queue.sequenceNumbers == [6, 8, 10, 11])
        #expect(queue.firstSequenceNumber == 6)
        #expect(queue.queuedBytes == 2 + 2 + 3 + 3)
        let r3 = queue.process(SACK(ackNumber: 11))
        #expect(r3)
        #expect(queue.isEmpty)
        #expect(queue.queuedBytes == 0)
        let r12 = queue.append(bytes("x"))
        #expect(r12 == 12)
        #expect(queue.sequenceNumbers == [12])
    }

    @Test func badSackDetectedButStillRemoves() {
        var queue = SendQueue()
        queue.append(bytes("a"))
        let r4 = queue.process(SACK(ackNumber: 1))
        #expect(!r4)
        #expect(queue.isEmpty)
        var other = SendQueue()
        other.append(bytes("a"))
        other.append(bytes("b"))
        let r5 = other.process(SACK(ackNumber: -1, sackList: [1, 2]))
        #expect(!r5)
        #expect(other.sequenceNumbers == [0])
        var empty = SendQueue()
        let r6 = empty.process(SACK(ackNumber: -1))
        #expect(r6)
        let r7 = empty.process(SACK(ackNumber: 0))
        #expect(!r7)
    }

    @Test func forEachFromSkipsHolesAndLowerNumbers() {
        var queue = SendQueue()
        for index in 0..<5 { queue.append(bytes("s\(index)")) }
        _ = queue.process(SACK(ackNumber: 0, sackList: [2]))
        var seen: [Int64] = []
        queue.forEach(from: 1) { seq, value in
            #expect(value == bytes("s\(seq)"))
            seen.append(seq)
        }
        #expect(seen == [1, 3, 4])
        seen.removeAll()
        queue.forEach(from: 4) { seq, _ in seen.append(seq) }
        #expect(seen == [4])
        seen.removeAll()
        queue.forEach(from: 9) { seq, _ in seen.append(seq) }
        #expect(seen.isEmpty)
    }

    @Test func manyStringsStayConsistent() {
        var queue = SendQueue()
        var expected: [Int64] = []
        for round in 0..<50 {
            for _ in 0..<40 { expected.append(queue.append(bytes("x"))) }
            let ack = Int64(round * 40 + 10)
            let listed = [ack + 5, ack + 7]
            let r8 = queue.process(SACK(ackNumber: ack, sackList: listed))
            #expect(r8)
            expected.removeAll { $0 <= ack || listed.contains($0) }
            #expect(queue.sequenceNumbers == expected)
            #expect(queue.queuedBytes == expected.count)
        }
    }
}

@Suite struct ReceiveWindowTests {
    private func receive(_ window: inout ReceiveWindow, _ items: [(Int64, String)]) -> ([String], Bool) {
        var delivered: [String] = []
        let hit = window.receive(items.map { ($0.0, Array($0.1.utf8)[...]) }) {
            delivered.append(String(decoding: $0, as: UTF8.self))
        }
        return (delivered, hit)
    }

    // Case 58: reordering, and the SACK of a window with gaps.
    @Test func case58_reorderedStringsDeliveredInOrderAndSACK() {
        var window = ReceiveWindow()
        let r13 = receive(&window, [(1, "a")])
        #expect(r13.0 == [])
        #expect(window.sack == SACK(ackNumber: -1, sackList: [1]))
        let r14 = receive(&window, [(0, "b")])
        #expect(r14.0 == ["b", "a"])
        var other = ReceiveWindow()
        _ = receive(&other, [(0, "x")])
        #expect(other.sack.description == "|0")
        _ = receive(&other, [(4, "x")])
        #expect(other.sack.description == "4|0")
        _ = receive(&other, [(5, "x")])
        #expect(other.sack.description == "4,5|0")
        #expect(other.sackEquals(SACK(ackNumber: 0, sackList: [4, 5])))
        #expect(!other.sackEquals(SACK(ackNumber: 0, sackList: [4])))
    }

    @Test func duplicatesIgnored() {
        var window = ReceiveWindow()
        let r15 = receive(&window, [(0, "a"), (0, "a"), (1, "b")])
        #expect(r15.0 == ["a", "b"])
        let r16 = receive(&window, [(0, "a"), (1, "b"), (2, "c")])
        #expect(r16.0 == ["c"])
        #expect(window.lastAck == 2)
    }

    // Case 56 at the window level: 50 strings cached, the 51st is a limit hit.
    @Test func case56_tooManyStrings() {
        var window = ReceiveWindow()
        let (delivered, hit) = receive(&window, (1...201).map { (Int64($0), "string") })
        #expect(delivered.isEmpty)
        #expect(hit)
        #expect(window.cachedCount == 50)
        #expect(window.sack.sackList == Array(1...50))
        #expect(window.sack.ackNumber == -1)
    }

    // Case 57: the byte limit with the estimate 30 + length.
    @Test func case57_tooManyBytes() {
        var window = ReceiveWindow()
        let big = String(repeating: "x", count: 1_048_577)
        let r17 = receive(&window, [(1, big)])
        #expect(r17.1)
        #expect(window.cachedCount == 0)
        var second = ReceiveWindow()
        let chunk = String(repeating: "x", count: 409_600)
        let r18 = receive(&second, [(1, chunk), (2, chunk), (3, chunk)])
        #expect(r18.1)
        #expect(second.cachedCount == 2)
        var third = ReceiveWindow()
        let r19 = receive(&third, [(1, String(repeating: "x", count: 1_048_575))])
        #expect(r19.1)
        var fits = ReceiveWindow()
        let r20 = receive(&fits, [(1, String(repeating: "x", count: 1_048_546))])
        #expect(!r20.1)
        #expect(fits.cachedBytesEstimate == 1_048_576)
    }

    // Recommendation of 6.6: a string already cached is ignored, not re-counted.
    @Test func alreadyCachedStringIgnored() {
        var window = ReceiveWindow()
        let half = String(repeating: "x", count: 500_000)
        let r21 = receive(&window, [(2, half)])
        #expect(!r21.1)
        let r22 = receive(&window, [(2, half)])
        #expect(!r22.1)
        #expect(window.cachedBytesEstimate == 500_030)
        let r23 = receive(&window, [(3, String(repeating: "y", count: 100_000))])
        #expect(!r23.1)
        var full = ReceiveWindow(
            limits: ReceiveWindowLimits(maxUndeliveredStrings: 2, maxUndeliveredBytes: 1000, overheadPerString: 30))
        let r24 = receive(&full, [(1, "a"), (2, "b")])
        #expect(!r24.1)
        let r25 = receive(&full, [(2, "b")])
        #expect(!r25.1)
        let r26 = receive(&full, [(3, "c")])
        #expect(r26.1)
    }

    @Test func deliverableStringsReturnedEvenWhenLimitHit() {
        var window = ReceiveWindow(
            limits: ReceiveWindowLimits(maxUndeliveredStrings: 1, maxUndeliveredBytes: 1000, overheadPerString: 30))
        let (delivered, hit) = receive(&window, [(0, "a"), (2, "c"), (3, "d"), (4, "e")])
        #expect(delivered == ["a"])
        #expect(hit)
        let r27 = receive(&window, [(1, "b")])
        #expect(r27.0 == ["b", "c"])
        #expect(window.cachedBytesEstimate == 0)
    }
}
