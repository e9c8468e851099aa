import type { ContainerLogLine, LiveHostMetricsEvent, LiveMetricsSampleEvent, ContainerOperation, ContainerOperationDispatch, DeliveryDispatch, DeliveryKind, DeliveryMachine, ExecutionDispatch, ExecutionSummary, Machine, MachineContainer, MachineDockerStatus, OutputChunk } from '@kapitan/shared';

/**
 * Services record, then publish one of these; the channels forward them to
 * socket.io rooms. With the Redis adapter those rooms span every node, so
 * whichever node published, the socket's own node delivers.
 */
export interface DomainEvents {
  'session.revoked': { sessionId: string; userId: string };
  'user.deleted': { userId: string };
  'membership.changed': { projectId: string; userId: string };
  'project.deleted': { projectId: string };
  'machine.updated': { projectId: string; machine: Machine };
  'machine.revoked': { projectId: string; machineId: string };
  'execution.updated': { projectId: string; execution: ExecutionSummary };
  'execution.output': { executionId: string; chunks: OutputChunk[] };
  /** `payloads`, when the publisher has them at hand, spare the listener a read. */
  'execution.dispatch': { machineId: string; executionIds: string[]; payloads?: ExecutionDispatch[] };
  'execution.cancel': { machineId: string; executionId: string };
  'delivery.updated': { projectId: string; kind: DeliveryKind; machine: DeliveryMachine };
  'delivery.dispatch': { machineId: string; payloads: DeliveryDispatch[] };
  'containers.updated': { projectId: string; machineId: string; snapshot: boolean; containers: MachineContainer[]; removed: string[] };
  'docker.status': { projectId: string; status: MachineDockerStatus };
  'container-operation.updated': { projectId: string; operation: ContainerOperation };
  'container-operation.dispatch': { machineId: string; dispatch: ContainerOperationDispatch };
  /** Lines of a followed log, from the agent of `machineId` (bound to its socket, never from the payload). */
  'container.logs': { machineId: string; streamId: string; lines: ContainerLogLine[]; dropped?: number; ended?: boolean; reason?: string };
  /** A sample as it arrived from the agent of `machineId` (bound to its socket); for the machine's watchers. */
  'metrics.sample': LiveMetricsSampleEvent;
  /** A stored host sample's headline, for the project's machine list. */
  'metrics.host': LiveHostMetricsEvent;
}
export type DomainEventName = keyof DomainEvents;
