/** fullCollection moved to the library's read pipeline (src/read-pipeline.ts), which runs it; kept here for the tests. */
export { fullCollection } from '../read-pipeline.js';
