// Codable values travel as restricted strings and come back unchanged.
import Foundation
import MinervaCore
import MinervaJSON
import Testing

@Suite struct MinervaJSONTests {
    struct Message: Codable, Equatable {
        var room: String
        var text: String
        var count: Int
    }

    @Test(arguments: ["plain", "héllo wörld", "emoji 😀 and 中文", "tab\tnew\nline\u{7F}del", "quote \" back \\ slash"])
    func roundTripThroughARestrictedString(text: String) throws {
        let message = Message(room: "lobby", text: text, count: 3)
        let string = try MinervaJSON.encode(message)
        #expect(RestrictedString.isValid(Array(string.utf8)))
        #expect(try MinervaJSON.decode(Message.self, from: Array(string.utf8)) == message)
    }

    @Test func asciifyEscapesUTF16CodeUnits() {
        #expect(MinervaJSON.asciify("\"é\"") == "\"\\u00e9\"")
        #expect(MinervaJSON.asciify("\"😀\"") == "\"\\ud83d\\ude00\"")
        #expect(MinervaJSON.asciify("\"\u{7F}\"") == "\"\\u007f\"")
        #expect(MinervaJSON.asciify("{\"a\":1}") == "{\"a\":1}")
    }

    @Test func sendJSONQueuesOneString() throws {
        let engine = MinervaServerEngine(now: 0) { _ in Quiet() }
        let handle = TransportHandle(1)
        engine.openTransport(handle, kind: .socket, connection: ConnectionInfo(), now: 0)
        let hello =
            "{\"tnum\":0,\"new\":1,\"ver\":2,\"id\":\"abcdefghijklmnopqrstuv\",\"ming\":1,\"maxia\":0,\"seenack\":\"|-1\"}H"
        engine.framesReceived(handle, frames: [Array(hello.utf8)[...]], frameCorruption: false, now: 0)
        let stream = try #require(engine.stream(StreamID("abcdefghijklmnopqrstuv")!))
        try stream.sendJSON(Message(room: "r", text: "ünïcode", count: 1))
        #expect(stream.queuedCount == 1)
    }

    final class Quiet: MinervaStreamHandler {
        func streamStarted(_ stream: ServerStream) throws {}
        func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {}
    }
}
