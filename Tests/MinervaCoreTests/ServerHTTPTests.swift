// PROTOCOL.md 9 group F (cases 77-90) at the engine level: a POST body in, the exact response body, its
// Content-Length decision and whether the response finished out. Case 91 (routing) belongs to the HTTP layer.

import MinervaTestSupport
import Testing

@testable import MinervaCore

/// After case 80: the stream exists and has exchanged no strings.
private func afterCase80() -> Harness {
    let h = Harness()
    h.post(hh("eeds:null") + "\n")
    return h
}

@Suite struct ServerHTTPTests {
    @Test(arguments: ["\n", "\r\n"])
    func case77_bodyFramesPassedToProtocol(lineEnd: String) {
        let h = Harness()
        let body = [hh("eeds:null"), "string0 ", "string1 ", "string2 "].map { $0 + lineEnd }.joined()
        let t = h.post(body)
        #expect(h.responses[t]?.body == ";)]}^\nC\n|2A\n|2A\n|-1T\n")
        #expect(h.responses[t]?.contentLength == 21)
        #expect(h.responses[t]?.finished == true)
        #expect(h.app.allStrings == ["string0", "string1", "string2"])

        let h2 = Harness()
        let streaming = [hh("eeds:null", "ming:1"), "string0 ", "string1 ", "string2 "].map { $0 + lineEnd }.joined()
        let t2 = h2.post(streaming)
        #expect(h2.responses[t2]?.body == ";)]}^\nC\n|2A\n")
        #expect(h2.responses[t2]?.contentLength == nil)
        #expect(h2.responses[t2]?.finished == false)
    }

    @Test func case78_bodyNotEndingInNewline() {
        let h = Harness()
        let t = h.post(hh("eeds:null", "ming:1") + "\nstring0 \nstring1 ")
        #expect(h.app.allStrings == ["string0"])
        #expect(h.responses[t]?.body == ";)]}^\nC\n|0A\n")
        #expect(h.responses[t]?.finished == false)
    }

    private func streamWithQueue() throws -> Harness {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        h.engine.transportClosed(t, now: 0)
        try h.app {
            try h.stream!.send("string0")
            try h.stream!.send("string1")
        }
        return h
    }

    @Test func case79_S2CStringsAlreadyAvailable() throws {
        let h = try streamWithQueue()
        let t = h.post(hh("eeds:null") + "\nstring0 \n")
        #expect(h.responses[t]?.body == ";)]}^\nC\n0N\nstring0 \nstring1 \n|0A\n|0A\n|-1T\n")
        #expect(h.responses[t]?.contentLength == 42)
        #expect(h.responses[t]?.finished == true)
        try h.app { try h.stream!.send("extraString") }
        #expect(h.responses[t]?.body.hasSuffix("|-1T\n") == true)

        let h2 = try streamWithQueue()
        let t2 = h2.post(hh("eeds:null", "ming:1") + "\nstring0 \n")
        #expect(h2.responses[t2]?.body == ";)]}^\nC\n0N\nstring0 \nstring1 \n|0A\n")
        #expect(h2.responses[t2]?.contentLength == nil)
        try h2.app { try h2.stream!.send("extraString") }
        #expect(h2.responses[t2]?.body == ";)]}^\nC\n0N\nstring0 \nstring1 \n|0A\nextraString \n")
        #expect(h2.responses[t2]?.finished == false)
    }

    @Test func case80_firstTransport() {
        let h = Harness()
        let t = h.post(hh("eeds:null") + "\n")
        #expect(h.responses[t]?.body == ";)]}^\nC\n|-1A\n|-1T\n")
        #expect(h.responses[t]?.contentLength == 18)
        #expect(h.responses[t]?.finished == true)
        #expect(h.stream != nil)
        #expect(h.engine.transportCount == 0)
    }

    @Test(arguments: [false, true])
    func case81_S2CStringsSoonAvailable(streaming: Bool) throws {
        let h = afterCase80()
        let t = h.post(hh("-new", "eeds:null", "ming:\(streaming ? 1 : 0)") + "\n")
        #expect(h.responses[t]?.writes == 0)
        try h.app {
            try h.stream!.send("string0")
            try h.stream!.send("string1")
        }
        if streaming {
            #expect(h.responses[t]?.body == ";)]}^\n0N\nstring0 \nstring1 \n")
            #expect(h.responses[t]?.contentLength == nil)
            #expect(h.responses[t]?.finished == false)
        } else {
            #expect(h.responses[t]?.body == ";)]}^\n0N\nstring0 \nstring1 \n|-1A\n|-1T\n")
            #expect(h.responses[t]?.contentLength == 37)
            #expect(h.responses[t]?.finished == true)
        }
    }

    // Case 82 (headers) is the HTTP layer's; at the engine level an empty or unterminated body is answered as
    // PROTOCOL.md 10.8 recommends instead of hanging.
    @Test(arguments: ["", "no newline at all"])
    func case82_emptyOrUnterminatedBodyAnswered(body: String) {
        let h = Harness()
        let t = h.post(body)
        #expect(h.responses[t]?.body == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        #expect(h.responses[t]?.contentLength == 39)
    }

    @Test func case83_clientAbortsRequest() {
        let h = Harness()
        let t = h.post(hh("eeds:null", "ming:1") + "\n")
        #expect(h.stream?.transportCount == 1)
        h.engine.transportClosed(t, now: 1)
        #expect(h.stream?.transportCount == 0)
        #expect(h.stream?.lastReceived == 1)
        #expect(h.engine.takeActions().isEmpty)
        #expect(h.responses[t]?.finished == false)
        #expect(h.app.destroyed == [0])
    }

    @Test(arguments: [0, 1])
    func case84_nonPrimaryTransportClosed(ming: Int) {
        let h = afterCase80()
        let t = h.post(hh("-new", "-eeds", "ming:\(ming)") + "\n")
        #expect(h.responses[t]?.body == ";)]}^\n|-1A\n|-1T\n")
        #expect(h.responses[t]?.contentLength == 16)
        #expect(h.responses[t]?.finished == true)
    }

    // 4.3: a streaming non-primary with something pending flushes first, then terminates in a second write.
    @Test func case84_streamingNonPrimaryWithPendingHasNoContentLength() {
        let h = Harness()
        let t = h.post(hh("-eeds", "ming:1") + "\n")
        #expect(h.responses[t]?.body == ";)]}^\nC\n|-1A\n|-1T\n")
        #expect(h.responses[t]?.contentLength == nil)
        #expect(h.responses[t]?.writes == 2)
        #expect(h.responses[t]?.finished == true)
    }

    @Test func case85_maxOpenTime() {
        let h = afterCase80()
        let t = h.post(hh("new:false", "tnum:1", "eeds:null", "maxt:2") + "\n")
        #expect(h.responses[t]?.writes == 0)
        h.advance(to: 1.9)
        #expect(h.responses[t]?.writes == 0)
        h.advance(to: 2)
        #expect(h.responses[t]?.body == ";)]}^\n|-1A\n|-1T\n")
        #expect(h.responses[t]?.finished == true)
        #expect(h.responses[t]?.contentLength == 16)
    }

    @Test(arguments: [false, true])
    func case86_secondaryTerminatedInsideStringsReceived(clientReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStrings = { stream, _ in try? stream.reset(reason: "reset forced by mock protocol") }
        }
        h.post(hh("eeds:null") + "\n")
        let body =
            hh("new:false", "-eeds") + "\nstring0 \nstring1 \nstring2 \n" + (clientReset ? "client's reason|1!\n" : "")
        let t = h.post(body)
        #expect(h.responses[t]?.body == ";)]}^\n|2A\nreset forced by mock protocol|1!\n")
        #expect(h.responses[t]?.finished == true)
        #expect(h.app.resets.map(\.reason) == ["reset forced by mock protocol"])
    }

    @Test func case87_unknownStream() {
        let h = Harness()
        let t = h.post(hh("-new", "eeds:null") + "\n")
        #expect(h.responses[t]?.body == ";)]}^\nstream_attach_failureK\n")
        #expect(h.responses[t]?.contentLength == 29)
    }

    @Test func case88_overlongLine() {
        let h = Harness()
        let t = h.post(hh("eeds:null") + "\n" + String(repeating: "x", count: 1_048_577) + "\n")
        #expect(h.responses[t]?.body == ";)]}^\nframe_corruptionK\n")
        #expect(h.engine.streamCount == 0)
        // A line of exactly 1048576 bytes is accepted (a string that then overflows the receive window).
        let h2 = afterCase80()
        let t2 = h2.post(hh("-new", "-eeds") + "\n1N\n" + String(repeating: "x", count: 1_048_575) + " \n")
        #expect(h2.responses[t2]?.body == ";)]}^\n|-1A\n|-1T\nrwin_overflowK\n")
    }

    @Test func case89_invalidHello() {
        let h = Harness()
        let t = h.post("{}H\n")
        #expect(h.responses[t]?.body == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        #expect(h.responses[t]?.contentLength == 39)
    }

    @Test func case90_heartbeatOnLongPoll() {
        let h = afterCase80()
        let t = h.post(hh("-new", "eeds:null", "maxia:5") + "\n")
        #expect(h.responses[t]?.body == ";)]}^\nbeat^\n|-1A\n|-1T\n")
        #expect(h.responses[t]?.finished == true)
    }
}
