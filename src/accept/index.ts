export { DataBudget } from './data-budget.js';
export {
  AcceptPipeline,
  isAddress,
  type AcceptOutcome,
  type AcceptPipelineDeps,
  type AcceptRefusal,
  type CapacityRefusal,
  type AcceptRequest,
  type Accepted,
  type DedupRule,
} from './pipeline.js';
