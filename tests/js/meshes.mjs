// A seeded mesh of N services like tests/interop/ui/mesh_gen.py draws: gateways fan out to
// front services, which call a middle tier, which fans in to a few shared stores.
export function randomMesh(n, seed) {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const ids = Array.from({ length: n }, (_, i) => `svc-${String(i).padStart(2, '0')}`);
  const nodes = ids.map((id) => ({ id, width: 20 + Math.floor(rnd() * 120), height: 76 }));
  const edges = [];
  const tiers = [0.05, 0.3, 0.75, 1].map((f) => Math.max(1, Math.round(n * f)));
  for (let i = 0; i < n; i++) {
    const tier = tiers.findIndex((end) => i < end);
    if (tier === 3) continue;
    const from = tiers[tier], to = tiers[tier + 1];
    const fan = 1 + Math.floor(rnd() * 3);
    for (let k = 0; k < fan; k++) edges.push({ source: ids[i], target: ids[from + Math.floor(rnd() * (to - from))] });
    if (rnd() < 0.15 && tier + 2 < 4) edges.push({ source: ids[i], target: ids[tiers[tier + 1] + Math.floor(rnd() * (tiers[tier + 2] - tiers[tier + 1]))] });
  }
  edges.push({ source: ids[n - 1], target: ids[Math.floor(n / 2)] });  // a cycle back up
  return { nodes, edges };
}
