// The member list of one channel on one loop (MinervaChannels' delivery path), with no I/O: every member present when
// a delivery begins gets it exactly once, even when members leave, reset or join during the delivery.
import Testing

@testable import MinervaCluster
@testable import MinervaCore

@Suite("Cluster: channel members")
struct ChannelMembersTests {
    final class Quiet: MinervaStreamHandler {
        func streamStarted(_ stream: ServerStream) throws {}
        func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {}
        func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
    }

    let engine = MinervaServerEngine(configuration: ServerEngineConfiguration(), now: 0) { _ in Quiet() }

    func streams(_ count: Int) -> [ServerStream] {
        (0..<count).map { n in
            ServerStream(streamID: StreamID(String(repeating: "s", count: 20) + String(n))!, engine: engine, now: 0)
        }
    }

    func delivered(_ members: ChannelMembers, during body: (ServerStream) -> Void = { _ in }) -> [ObjectIdentifier] {
        var seen: [ObjectIdentifier] = []
        members.forEachLive { stream in
            seen.append(ObjectIdentifier(stream))
            body(stream)
        }
        return seen
    }

    @Test("joining twice is once; leaving moves the last member into the gap; every member gets a delivery once")
    func joinLeave() {
        let all = streams(5)
        let members = ChannelMembers()
        for stream in all + all { members.insert(stream) }
        #expect(members.count == 5)
        members.remove(all[1])
        members.remove(all[1])
        #expect(members.count == 4)
        let seen = delivered(members)
        #expect(Set(seen) == Set([0, 2, 3, 4].map { ObjectIdentifier(all[$0]) }))
        #expect(seen.count == 4)
        for stream in all { members.remove(stream) }
        #expect(members.isEmpty)
    }

    @Test("a member leaving during a delivery (its send reset it) makes no other member miss it")
    func leaveDuringDelivery() {
        let all = streams(6)
        let members = ChannelMembers()
        for stream in all { members.insert(stream) }
        // The first member delivered to leaves, and so does a later one, while the delivery runs.
        var left: [ServerStream] = []
        let seen = delivered(members) { stream in
            if left.isEmpty {
                left = [stream, all[4] === stream ? all[5] : all[4]]
                for gone in left { members.remove(gone) }
            }
        }
        #expect(seen.count == 6)
        #expect(Set(seen) == Set(all.map(ObjectIdentifier.init)))
        #expect(members.count == 4)
        let next = delivered(members)
        #expect(Set(next) == Set(all.filter { s in !left.contains { $0 === s } }.map(ObjectIdentifier.init)))
    }

    @Test("a member that reset without leaving gets nothing and is dropped; one joining during a delivery waits")
    func resetAndJoinDuringDelivery() throws {
        let all = streams(4)
        let members = ChannelMembers()
        for stream in all.prefix(3) { members.insert(stream) }
        try all[1].reset(reason: "gone")
        let seen = delivered(members) { _ in members.insert(all[3]) }
        #expect(Set(seen) == Set([all[0], all[2]].map(ObjectIdentifier.init)))
        #expect(members.count == 3)  // all[1] dropped, all[3] joined
        #expect(Set(delivered(members)) == Set([all[0], all[2], all[3]].map(ObjectIdentifier.init)))
    }
}
