export { EVENT_RECIPIENT, EventBuilder, eventId, reportsEvents, type DeliveryEvent, type EventRecipient, type FailedReason } from './events.js';
