namespace Mae.MLNet.Input;

/// <summary>
/// Counter-based randomness of the input path: every value is a pure function of (seed, epoch, image index, draw
/// number), so the epoch order and each image's crop/flip do not depend on thread timing, worker count or where a
/// run resumed. SplitMix64's finaliser (Steele, Lea, Flood 2014) hashes the key; uniforms take its top 53 bits.
/// </summary>
internal static class SampleRandom
{
    const ulong Golden = 0x9E3779B97F4A7C15UL;
    const ulong PermutationDomain = 0x5045524D5554454EUL; // separates the order's stream from the crops'

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    static ulong Key(long seed, int epoch, ulong index)
        => Mix(Mix(Mix((ulong)seed + Golden) ^ ((ulong)(uint)epoch * Golden)) ^ (index + Golden));

    static double ToUnit(ulong bits) => (bits >> 11) * (1.0 / (1UL << 53));

    /// <summary>Fills <paramref name="u"/> with uniforms in [0, 1) for image <paramref name="index"/> of the epoch.</summary>
    public static void Uniforms(long seed, int epoch, long index, Span<double> u)
    {
        ulong state = Key(seed, epoch, (ulong)index);
        for (int k = 0; k < u.Length; k++)
        {
            state += Golden;
            u[k] = ToUnit(Mix(state));
        }
    }

    /// <summary>A permutation of 0 … n − 1 for the epoch (Fisher–Yates, unbiased bounded draws).</summary>
    public static long[] Permutation(long n, long seed, int epoch)
    {
        if (n < 0 || n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(n), n, "Too many images for one epoch order.");
        var order = new long[n];
        for (long i = 0; i < n; i++) order[i] = i;
        ulong state = Key(seed, epoch, PermutationDomain);
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
}
