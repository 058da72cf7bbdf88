// The application's authorizer sees each would-be stream's hello and connection before the stream exists; a refusal
// reaches the client as an application-level reset and builds no handler (issue 13).

import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct StreamAuthorizerTests {
    @Test func aRefusedStreamGetsTheReasonAndNeverExists() {
        let h = Harness()
        var seen: [StreamAuthorizationRequest] = []
        h.engine.streamAuthorizer = { request in
            seen.append(request)
            return request.header("Cookie") == "token=good" ? nil : "please log in"
        }
        let refused = h.post(hh("eeds:null") + "\n0N\nhi \n")
        #expect(h.responses[refused]?.body == ";)]}^\nplease log in|1!\n")
        #expect(h.engine.streamCount == 0)
        #expect(h.recorders.isEmpty)
        #expect(h.engine.counters.streamsRefused == 1)
        #expect(seen.first?.kind == .http)
        #expect(seen.first?.hello.streamID == StreamID(testStreamID)!)

        let socket = h.socket()
        h.send(socket, [hs()])
        #expect(h.out(socket) == ["please log in|1!", "Y"])
        #expect(h.engine.streamCount == 0)
    }

    @Test func anAllowedStreamIsCreatedAndLaterTransportsAreNotAskedAgain() {
        let h = Harness()
        var calls = 0
        h.engine.streamAuthorizer = { _ in
            calls += 1
            return nil
        }
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1")])
        #expect(calls == 1)
        #expect(h.engine.streamCount == 1)
    }

    @Test func aReasonThatIsNotARestrictedStringBecomesNotAuthorized() {
        let h = Harness()
        h.engine.streamAuthorizer = { _ in "bad\nreason" }
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["not authorized|1!", "Y"])
    }
}
