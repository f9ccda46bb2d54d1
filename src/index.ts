/**
 * pcapflow's public API. Every stage is exported twice: as a pure, synchronous core (src/core;
 * `write(input, emit)`, `end(emit)`, `stats`) and as an object-mode Transform around it.
 */
export { PcapflowError, ERROR_CODES, isPcapflowError, type ErrorCode, type ErrorContext } from './core/errors.js';
export {
  Packet,
  PacketPool,
  type PacketBatch,
  type SkipReason,
  TCP_FIN,
  TCP_SYN,
  TCP_RST,
  TCP_PSH,
  TCP_ACK,
  TCP_URG,
  TCP_ECE,
  TCP_CWR,
  TCP_NS,
} from './core/packet.js';
export { StageChain, type Stage, type OnError } from './core/stage.js';
export * from './core/events.js';
export type { Flow } from './core/flow.js';

// Capture input
export { CaptureReader, type CaptureReaderOptions, type CaptureFormat } from './core/capture-reader.js';
export { ReaderTransform, type ReaderTransformOptions } from './sources/reader-transform.js';
export { openCaptures, captureInputStats, CaptureSource, type OpenCapturesOptions, type InputStats } from './sources/capture-source.js';

// Decoding
export { FrameDecoder, type DecoderOptions } from './core/frame-decoder.js';
export { IpDecoder, type IpDecoderOptions } from './core/ip-decoder.js';
export { TcpDecoder, tcpOptions, type TcpOptions } from './core/tcp-decoder.js';
export { PacketDecoder, type PacketDecoderOptions } from './core/packet-decoder.js';
export { FrameDecodeTransform, IpDecodeTransform, TcpDecodeTransform, PacketDecodeTransform } from './transforms/decode-transforms.js';
export { formatIp, parseIp } from './core/addr.js';
export { packetJson, packetText, tcpFlagString, type PacketJson } from './core/packet-format.js';

// Filtering (pcap filter language, evaluated as libpcap would on the raw frame)
export { compileFilter, PacketFilter, FilterStage, parseFilter, formatFilter, type FilterNode, type FilterStats } from './core/filter.js';
export { FilterTransform } from './transforms/filter-transform.js';

// TCP
export { TcpDemux, DEMUX_DEFAULTS, type TcpDemuxOptions, type TcpDemuxStats } from './core/flow-table.js';
export { ReorderWindow, REORDER_DEFAULTS, type ReorderOptions, type ReorderStats } from './core/reorder.js';
export { TcpReassembler, REASSEMBLER_DEFAULTS, type TcpReassemblerOptions, type TcpReassemblerStats } from './core/reassembler.js';
export { ReorderTransform, ShardSelectTransform, TcpDemuxTransform, TcpReassemblerTransform, TcpStreamTransform, type TcpStreamOptions } from './transforms/tcp-transforms.js';
export { ShardSelect, parseShard, shardKey, shardOfKey, type ShardSpec } from './core/shard-key.js';

// HTTP/1.x on the streams (issue 15: the message parser; decoding of bodies comes next)
export {
  HttpParser,
  headerValues,
  type HttpParserOptions,
  type HttpParserStats,
  type HttpEvent,
  type HttpRequestEvent,
  type HttpResponseEvent,
  type HttpBodyEvent,
  type HttpEndEvent,
  type HttpResyncEvent,
  type HttpTunnelEvent,
  type HttpErrorEvent,
  type HttpDecodedEvent,
  type HttpCloseEvent,
  type HttpDecodeResult,
} from './core/http.js';
export { HttpTransform } from './transforms/http-transform.js';
export { HttpBodyDecoder, HttpDecodeTransform, type HttpDecodeOptions } from './transforms/http-decode.js';
export { HttpRecords, type HttpRecord, type HttpTransactionRecord, type HttpErrorRecord, type BodyDigest } from './core/http-records.js';

export { planMemory } from './core/memory-budget.js';

// Sinks
export {
  StdoutSink,
  NdjsonSink,
  FilesSink,
  BatchSink,
  ByteSink,
  type StdoutSinkOptions,
  type NdjsonSinkOptions,
  type FilesSinkOptions,
  type ByteSinkOptions,
  type ConnectionRecord,
} from './sinks/index.js';
export { type PayloadEncoding } from './core/format.js';

// The read pipeline: what `pcapflow read` runs, in one call
export {
  readCaptures,
  ReadPipeline,
  renderThreadByDefault,
  RENDER_THREAD_MIN_INPUT,
  type ReadCapturesOptions,
  type ReadInput,
  type ReadSinkSpec,
  type ReadStats,
} from './read-pipeline.js';

// Plumbing
export { StageTransform, type StageTransformOptions } from './transforms/stage-transform.js';
export { runPipeline } from './pipeline.js';
export { TlsParser, isGrease, ja3String, ja3sString, ja4, ja4Alpn, parseClientHello, parseServerHello, type TlsRecord, type TlsClientHello, type TlsServerHello, type TlsAlert, type TlsIssue, type TlsErrorCode, type TlsMissing, type TlsHashes, type TlsParserOptions, type TlsParserStats } from './core/tls.js';
export { TlsTransform, nodeTlsHashes } from './transforms/tls-transform.js';
export { TlsSink, tlsJson, tlsText, certificateInfo, type TlsSinkOptions, type TlsJsonRecord, type TlsCertificateInfo } from './sinks/tls-sink.js';
export { NatsSink, type NatsSinkOptions, type NatsSinkStats } from './sinks/nats-sink.js';
export { consumeRun, type ConsumeRunOptions, type ConsumeRunStats } from './sources/nats-source.js';
