export { SubmissionServer, type SubmissionDeps } from './server.js';
