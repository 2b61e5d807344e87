namespace Mae.MLNet.Input;

/// <summary>
/// The data plan's own randomness — THE one owner of it: the epoch orders, each image's crop/flip uniforms and the
/// data-parallel masking noise are pure functions of (seed, epoch, index), never of libtorch's generator, thread
/// timing, worker count, rank or world size — so a run takes the same steps on any number of workers or ranks and
/// resumes anywhere. Counter-based: SplitMix64's finaliser (Steele, Lea, Flood 2014) hashes the key and each draw
/// advances it by the golden-ratio increment; doubles take the top 53 bits, floats the top 24 (exact in float32).
/// <para>Two key shapes, both hashing (seed, epoch) first: the image stream (the file sources' order and crops) mixes
/// in the index alone; the plan streams (the in-memory sources' data-parallel order, the masking noise) mix in a
/// domain constant, then the index. Both are kept as first released so existing runs resume bit for bit.</para>
/// </summary>
internal static class MaePlanRandom
{
    const ulong Golden = 0x9E3779B97F4A7C15UL;
    const ulong FileOrderIndex = 0x5045524D5554454EUL; // the file sources' order: an "index" no image can have
    const ulong OrderDomain = 0x4F52444552000001UL, NoiseDomain = 0x4E4F495345000002UL, StepDomain = 0x5354455000000003UL,
        StreamDomain = 0x5354524541000004UL;

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    static ulong EpochKey(long seed, int epoch) => Mix(Mix((ulong)seed + Golden) ^ ((ulong)(uint)epoch * Golden));

    /// <summary>The image stream's key of <paramref name="index"/>.</summary>
    static ulong ImageKey(long seed, int epoch, ulong index) => Mix(EpochKey(seed, epoch) ^ (index + Golden));

    /// <summary>A plan stream's key of <paramref name="index"/> in <paramref name="domain"/>.</summary>
    static ulong PlanKey(long seed, int epoch, ulong domain, ulong index) => Mix(Mix(EpochKey(seed, epoch) ^ domain) ^ (index + Golden));

    static double ToUnit(ulong bits) => (bits >> 11) * (1.0 / (1UL << 53));

    /// <summary>Fills <paramref name="u"/> with uniforms in [0, 1) for image <paramref name="index"/> of the epoch
    /// (the file sources' crop and flip).</summary>
    public static void Uniforms(long seed, int epoch, long index, Span<double> u)
    {
        ulong state = ImageKey(seed, epoch, (ulong)index);
        for (int k = 0; k < u.Length; k++) u[k] = NextUniform(ref state);
    }

    /// <summary>The next uniform in [0, 1) of the SplitMix64 stream at <paramref name="state"/> (advances it).</summary>
    public static double NextUniform(ref ulong state)
    {
        state += Golden;
        return ToUnit(Mix(state));
    }

    /// <summary>A standard normal from two uniforms in [0, 1) (Box–Muller).</summary>
    public static double Normal(double u1, double u2) => Math.Sqrt(-2.0 * Math.Log(1.0 - u1)) * Math.Cos(2.0 * Math.PI * u2);

    /// <summary>The epoch order of the in-memory sources in data-parallel training: a permutation of 0 … n − 1.</summary>
    public static long[] Permutation(long n, long seed, int epoch) => Shuffle(n, PlanKey(seed, epoch, OrderDomain, 0));

    /// <summary>The epoch order of the file sources (<c>ImageBatchReader</c>), one process or many ranks alike.</summary>
    public static long[] FilePermutation(long n, long seed, int epoch) => Shuffle(n, ImageKey(seed, epoch, FileOrderIndex));

    /// <summary>Fisher–Yates from <paramref name="state"/>, with unbiased bounded draws.</summary>
    static long[] Shuffle(long n, ulong state)
    {
        if (n < 0 || n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(n), n, "Too many images for one epoch order.");
        var order = new long[n];
        for (long i = 0; i < n; i++) order[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            ulong bound = (ulong)i + 1, r;
            ulong limit = ulong.MaxValue - ulong.MaxValue % bound; // reject the top sliver so every j is equally likely
            do { state += Golden; r = Mix(state); } while (r >= limit);
            long j = (long)(r % bound);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The seed of an enumerated stream's shuffle buffer (<see cref="MaeStreamingImageSource"/>) in one epoch.</summary>
    public static int StreamSeed(long seed, int epoch) => (int)(PlanKey(seed, epoch, StreamDomain, 0) >> 33);

    /// <summary>libtorch's seed for micro-batch <paramref name="microBatch"/> of the epoch (<see cref="MaeDataShard.MicroBatch"/>:
    /// the same number on W ranks and in one process accumulating their batches), so the draws libtorch makes inside a
    /// step (augmentation of in-memory sources, mixup, drop path) are keyed by where the batch sits in the epoch.</summary>
    public static long MicroBatchSeed(long seed, int epoch, long microBatch) => (long)(PlanKey(seed, epoch, StepDomain, (ulong)microBatch) >> 1);

    /// <summary>The masking noise [positions.Length, patches] in [0, 1) of the images at global epoch positions
    /// <paramref name="positions"/> (row-major, for <c>random_masking</c>'s <c>noise</c> argument).</summary>
    public static float[] MaskNoise(long seed, int epoch, long[] positions, int patches)
    {
        var noise = new float[positions.Length * patches];
        for (int i = 0; i < positions.Length; i++)
        {
            ulong state = PlanKey(seed, epoch, NoiseDomain, (ulong)positions[i]);
            for (int k = 0; k < patches; k++)
            {
                state += Golden;
                noise[i * patches + k] = (Mix(state) >> 40) * (1f / (1 << 24));
            }
        }
        return noise;
    }
}
