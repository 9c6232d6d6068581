/**
 * The change matrix: one scenario per cell, with the outcome we promise.
 * A tree is a list of paths ("docs/" is a folder, "a.txt=v1" a file with
 * content v1). Each side's changes are steps on the base tree:
 * `add p=c`, `add p/`, `edit p=c`, `rm p`, `mv from -> to`.
 * `expect` is the tree both sides hold afterwards; "{conflict}" in a name
 * stands for the conflict suffix ` (conflict from laptop 2026-11-25)`.
 */
export interface Scenario {
  name: string;
  base: string[];
  remote: string[];
  local: string[];
  expect: string[];
}

export const SCENARIOS: Scenario[] = [
  // new
  { name: 'new on the server → downloaded', base: [], remote: ['add a.txt=r'], local: [], expect: ['a.txt=r'] },
  { name: 'new here → uploaded', base: [], remote: [], local: ['add a.txt=l'], expect: ['a.txt=l'] },
  { name: 'new on both, same content → one file', base: [], remote: ['add a.txt=same'], local: ['add a.txt=same'], expect: ['a.txt=same'] },
  { name: 'new on both, different content → both kept, the local one renamed', base: [], remote: ['add a.txt=r'], local: ['add a.txt=l'], expect: ['a.txt=r', 'a{conflict}.txt=l'] },
  { name: 'new folder on both → one folder with both sides\' files', base: [], remote: ['add d/', 'add d/r.txt=r'], local: ['add d/', 'add d/l.txt=l'], expect: ['d/', 'd/l.txt=l', 'd/r.txt=r'] },
  { name: 'a file here, a folder there, same name → both kept', base: [], remote: ['add x/'], local: ['add x=l'], expect: ['x/', 'x (conflict from laptop 2026-11-25)=l'] },
  // changed
  { name: 'changed on the server → downloaded', base: ['a.txt=v1'], remote: ['edit a.txt=v2'], local: [], expect: ['a.txt=v2'] },
  { name: 'changed here → uploaded', base: ['a.txt=v1'], remote: [], local: ['edit a.txt=v2'], expect: ['a.txt=v2'] },
  { name: 'changed on both, same content → nothing to do', base: ['a.txt=v1'], remote: ['edit a.txt=v2'], local: ['edit a.txt=v2'], expect: ['a.txt=v2'] },
  { name: 'changed on both, different content → server version keeps the name, ours becomes a conflict copy', base: ['a.txt=v1'], remote: ['edit a.txt=r'], local: ['edit a.txt=l'], expect: ['a.txt=r', 'a{conflict}.txt=l'] },
  // deleted
  { name: 'deleted on the server → deleted here', base: ['a.txt=v1', 'b.txt=v1'], remote: ['rm a.txt'], local: [], expect: ['b.txt=v1'] },
  { name: 'deleted here → deleted on the server (to its recycle bin)', base: ['a.txt=v1', 'b.txt=v1'], remote: [], local: ['rm a.txt'], expect: ['b.txt=v1'] },
  { name: 'deleted on both → gone', base: ['a.txt=v1'], remote: ['rm a.txt'], local: ['rm a.txt'], expect: [] },
  { name: 'changed here, deleted on the server → the edit is kept', base: ['a.txt=v1'], remote: ['rm a.txt'], local: ['edit a.txt=l'], expect: ['a.txt=l'] },
  { name: 'changed on the server, deleted here → the edit is kept', base: ['a.txt=v1'], remote: ['edit a.txt=r'], local: ['rm a.txt'], expect: ['a.txt=r'] },
  // moved
  { name: 'moved on the server → moved here', base: ['d/', 'a.txt=v1'], remote: ['mv a.txt -> d/b.txt'], local: [], expect: ['d/', 'd/b.txt=v1'] },
  { name: 'moved here → moved on the server', base: ['d/', 'a.txt=v1'], remote: [], local: ['mv a.txt -> d/b.txt'], expect: ['d/', 'd/b.txt=v1'] },
  { name: 'moved on both to different places → the server\'s move wins', base: ['d/', 'e/', 'a.txt=v1'], remote: ['mv a.txt -> d/a.txt'], local: ['mv a.txt -> e/a.txt'], expect: ['d/', 'd/a.txt=v1', 'e/'] },
  { name: 'moved on the server, changed here → moved and changed', base: ['d/', 'a.txt=v1'], remote: ['mv a.txt -> d/a.txt'], local: ['edit a.txt=l'], expect: ['d/', 'd/a.txt=l'] },
  { name: 'moved here, changed on the server → moved and changed', base: ['d/', 'a.txt=v1'], remote: ['edit a.txt=r'], local: ['mv a.txt -> d/a.txt'], expect: ['d/', 'd/a.txt=r'] },
  { name: 'moved here, deleted on the server → deleted (the content is in the server\'s recycle bin)', base: ['d/', 'a.txt=v1'], remote: ['rm a.txt'], local: ['mv a.txt -> d/a.txt'], expect: ['d/'] },
  { name: 'moved on the server, deleted here → deleted', base: ['d/', 'a.txt=v1'], remote: ['mv a.txt -> d/a.txt'], local: ['rm a.txt'], expect: ['d/'] },
  { name: 'renamed to a name differing only in case → renamed on the server', base: ['a.txt=v1'], remote: [], local: ['mv a.txt -> A.txt'], expect: ['A.txt=v1'] },
  { name: 'two names swapped here → swapped on the server', base: ['a=1', 'b=2'], remote: [], local: ['mv a -> tmp', 'mv b -> a', 'mv tmp -> b'], expect: ['a=2', 'b=1'] },
  // folders
  { name: 'folder deleted on the server with a new file inside here → the folder comes back with the new file only', base: ['d/', 'd/old.txt=v1'], remote: ['rm d'], local: ['add d/new.txt=l'], expect: ['d/', 'd/new.txt=l'] },
  { name: 'folder deleted here with a new file inside on the server → the folder comes back with the new file only', base: ['d/', 'd/old.txt=v1'], remote: ['add d/new.txt=r'], local: ['rm d'], expect: ['d/', 'd/new.txt=r'] },
  { name: 'folder deleted on the server with a changed file inside here → the changed file is kept', base: ['d/', 'd/a.txt=v1', 'd/b.txt=v1'], remote: ['rm d'], local: ['edit d/a.txt=l'], expect: ['d/', 'd/a.txt=l'] },
  { name: 'moves that would make a cycle → the local move is undone', base: ['a/', 'b/'], remote: ['mv a -> b/a'], local: ['mv b -> a/b'], expect: ['b/', 'b/a/'] },
  { name: 'folder renamed here while the server added a file in it → both', base: ['d/', 'd/a.txt=v1'], remote: ['add d/r.txt=r'], local: ['mv d -> e'], expect: ['e/', 'e/a.txt=v1', 'e/r.txt=r'] },
];
