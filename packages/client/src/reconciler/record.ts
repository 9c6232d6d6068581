/**
 * How the base learns from a completed step: an item's location and its
 * content are recorded separately, each once both sides agree on it. So a
 * step that moves an item locally (the remote side moved it) records the
 * new location, and leaves the content as the last one both sides had;
 * a crash between the two halves of a change leaves the other half to be
 * planned again.
 */
import type { Node } from './tree.ts';

/** The base entry for an item after a step, or undefined when it must be forgotten. */
export function agreedBase(base: Node | undefined, remote: Node | undefined, local: Node | undefined): Node | undefined {
  if (!remote || !local) {
    // Gone from a side: the base forgets it once it is gone from both, or when the base is
    // about a deletion that happened (the side without it carried out a delete of base content).
    return remote || local ? base : undefined;
  }
  const sameLocation = remote.parentId === local.parentId && remote.name === local.name;
  const sameContent = remote.kind === local.kind && remote.hash === local.hash;
  if (!base) return sameLocation && sameContent ? { ...remote } : undefined;
  return {
    ...base,
    parentId: sameLocation ? remote.parentId : base.parentId,
    name: sameLocation ? remote.name : base.name,
    hash: sameContent ? remote.hash : base.hash,
    size: sameContent ? remote.size : base.size,
  };
}
