// ES module entry point: loads the classic script (which defines globalThis.Minerva) and re-exports it.
import './minerva-client.js';

const Minerva = globalThis.Minerva;
export default Minerva;
export const {
    ClientStream,
    ReconnectingStream,
    HttpEndpoint,
    QANHelper,
    QANProtocolWrapper,
    KnownError,
    UnknownError,
    QuestionFailed,
    CancelledError,
    isRestricted,
} = Minerva;
export const asciify = Minerva.JSON.asciify;
