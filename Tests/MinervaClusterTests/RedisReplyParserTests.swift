// The RESP2 parser of the cluster's Redis client and the redis:// URL form, with no I/O.
import Testing

@testable import MinervaCluster

@Suite("Cluster: RESP2 replies and redis:// URLs")
struct RedisReplyParserTests {
    static let wire = Array(
        "+OK\r\n-ERR no\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*3\r\n$7\r\nmessage\r\n:-7\r\n*1\r\n$0\r\n\r\n*-1\r\n".utf8)
    static let expected: [RedisReply] = [
        .status("OK"), .error("ERR no"), .integer(42), .bulk(Array("hello".utf8)), .bulk(nil),
        .array([.bulk(Array("message".utf8)), .integer(-7), .array([.bulk([])])]), .array(nil),
    ]

    @Test("replies split at every point decode the same", arguments: 0...wire.count)
    func splitAnywhere(at split: Int) throws {
        var parser = RedisReplyParser()
        var replies: [RedisReply] = []
        Self.wire[..<split].withUnsafeBytes { parser.append($0) }
        while let reply = try parser.next() { replies.append(reply) }
        Self.wire[split...].withUnsafeBytes { parser.append($0) }
        while let reply = try parser.next() { replies.append(reply) }
        #expect(replies == Self.expected)
    }

    @Test("a malformed reply throws", arguments: ["?what\r\n", ":12x\r\n", "$abc\r\n"])
    func malformed(_ text: String) {
        var parser = RedisReplyParser()
        Array(text.utf8).withUnsafeBytes { parser.append($0) }
        #expect(throws: RedisProtocolError.self) { try parser.next() }
    }

    @Test("commands are RESP arrays of bulk strings")
    func encoding() {
        var out: [UInt8] = []
        encodeRedisCommand(["SET", "k", "vé"], into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n")
    }

    @Test(
        "redis:// URLs",
        arguments: [
            ("redis://127.0.0.1:6380", "127.0.0.1", 6380), ("redis://cache", "cache", 6379),
            ("redis://[::1]:7000/", "::1", 7000), ("redis://h:1/0", "h", 1),
        ])
    func urls(_ url: String, _ host: String, _ port: Int) {
        let parsed = MinervaClusterConfiguration.parse(redisURL: url)
        #expect(parsed?.host == host && parsed?.port == port)
    }

    @Test(
        "not redis:// URLs",
        arguments: ["http://h:1", "redis://", "redis://h:0", "redis://h:x", "redis://u@h:1", "redis://h:1/3"])
    func badURLs(_ url: String) {
        #expect(MinervaClusterConfiguration.parse(redisURL: url) == nil)
        #expect(throws: MinervaClusterConfigurationError.self) { try MinervaClusterConfiguration(redisURL: url) }
    }
}
