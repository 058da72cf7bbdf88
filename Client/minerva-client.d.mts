// Types for minerva-client.mjs: the same objects as the global `Minerva` of minerva-client.d.ts.
/// <reference path="./minerva-client.d.ts" />

declare const MinervaModule: typeof Minerva;
export default MinervaModule;
export import ClientStream = Minerva.ClientStream;
export import ReconnectingStream = Minerva.ReconnectingStream;
export import HttpEndpoint = Minerva.HttpEndpoint;
export import QANHelper = Minerva.QANHelper;
export import QANProtocolWrapper = Minerva.QANProtocolWrapper;
export import KnownError = Minerva.KnownError;
export import UnknownError = Minerva.UnknownError;
export import QuestionFailed = Minerva.QuestionFailed;
export import CancelledError = Minerva.CancelledError;
export import isRestricted = Minerva.isRestricted;
export declare const asciify: typeof Minerva.JSON.asciify;
