/**
 * Thread numbers for logs that name threads by large ids (pthread_self values, kernel tids): each
 * id gets the next small number when it first appears, 1 for the first, as native traces number
 * them. The last id looked up is cached, since logs come in runs of one thread.
 */
export class ThreadNumbers {
  private readonly map = new Map<number, number>();
  private lastId = NaN;
  private lastNo = 0;

  get count(): number {
    return this.map.size;
  }

  of(id: number): number {
    if (id === this.lastId) return this.lastNo;
    let no = this.map.get(id);
    if (no === undefined) {
      no = this.map.size + 1;
      this.map.set(id, no);
    }
    this.lastId = id;
    this.lastNo = no;
    return no;
  }
}
