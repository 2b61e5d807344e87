namespace Mae.MLNet.Training;

/// <summary>
/// The data plan's own randomness in data-parallel training: the epoch order and each image's masking noise are
/// pure functions of (seed, epoch, position) — never of libtorch's generator, of the rank or of the world size — so a
/// run on W ranks takes the same steps as on one and resumes at any world size. Counter-based: SplitMix64's
/// finaliser (Steele, Lea, Flood 2014) hashes the key, a uniform takes the top 24 bits (exact in float32).
/// </summary>
internal static class MaePlanRandom
{
    const ulong Golden = 0x9E3779B97F4A7C15UL;
    const ulong OrderDomain = 0x4F52444552000001UL, NoiseDomain = 0x4E4F495345000002UL;

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    static ulong Key(long seed, int epoch, ulong domain, ulong index)
        => Mix(Mix(Mix(Mix((ulong)seed + Golden) ^ ((ulong)(uint)epoch * Golden)) ^ domain) ^ (index + Golden));

    /// <summary>A permutation of 0 … n − 1 for the epoch (Fisher–Yates with unbiased bounded draws).</summary>
    public static long[] Permutation(long n, long seed, int epoch)
    {
        if (n < 0 || n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(n), n, "Too many images for one epoch order.");
        var order = new long[n];
        for (long i = 0; i < n; i++) order[i] = i;
        ulong state = Key(seed, epoch, OrderDomain, 0);
        for (long i = n - 1; i > 0; i--)
        {
            ulong bound = (ulong)i + 1, r;
            ulong limit = ulong.MaxValue - ulong.MaxValue % bound;
            do { state += Golden; r = Mix(state); } while (r >= limit);
            long j = (long)(r % bound);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The masking noise [positions.Length, patches] in [0, 1) of the images at global epoch positions
    /// <paramref name="positions"/> (row-major, for <c>random_masking</c>'s <c>noise</c> argument).</summary>
    public static float[] MaskNoise(long seed, int epoch, long[] positions, int patches)
    {
        var noise = new float[positions.Length * patches];
        for (int i = 0; i < positions.Length; i++)
        {
            ulong state = Key(seed, epoch, NoiseDomain, (ulong)positions[i]);
            for (int k = 0; k < patches; k++)
            {
                state += Golden;
                noise[i * patches + k] = (Mix(state) >> 40) * (1f / (1 << 24));
            }
        }
        return noise;
    }
}
