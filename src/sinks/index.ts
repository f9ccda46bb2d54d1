/** Sinks: where the stream events end up (text for people, NDJSON, one file per direction). */
export { BatchSink, ByteSink, type ByteSinkOptions, type ByteSinkStats } from './byte-sink.js';
export { StdoutSink, type StdoutSinkOptions } from './stdout-sink.js';
export { NdjsonSink, type NdjsonSinkOptions } from './ndjson-sink.js';
export {
  FilesSink,
  CONNECTIONS_FILE,
  DEFAULT_MAX_OPEN_FILES,
  defaultMaxOpenFiles,
  openFilesLimit,
  PART_SUFFIX,
  type FilesSinkOptions,
  type FilesSinkStats,
} from './files-sink.js';
export type { ConnectionRecord, FileDirectionRecord, GapRecord, OverlapRecord } from './connection-records.js';
export { FdPool, type FdPoolStats } from './fd-pool.js';
