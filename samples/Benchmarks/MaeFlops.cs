using Mae.MLNet.Model;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Matrix-multiply FLOPs (2 per multiply-add) of one MAE forward pass per image, counted from the config:
/// patch embedding, every Linear of the encoder and decoder blocks, the two attention matmuls, decoder_embed and
/// decoder_pred. Element-wise work (norms, softmax, GELU, adds) is left out; it is a few percent. A training
/// image-step is counted as 3× the forward (forward + the two matmuls of each backward), as usual.
/// </summary>
public static class MaeFlops
{
    /// <summary>One pre-norm transformer block over <paramref name="tokens"/> tokens of width <paramref name="dim"/>.</summary>
    public static double Block(long tokens, long dim, long mlpHidden) =>
        2.0 * tokens * dim * (3 * dim)        // qkv
        + 2.0 * tokens * tokens * dim         // q·kᵀ (all heads together)
        + 2.0 * tokens * tokens * dim         // attn·v
        + 2.0 * tokens * dim * dim            // proj
        + 2.0 * tokens * dim * mlpHidden * 2; // fc1 + fc2

    /// <summary>Forward FLOPs per image. <paramref name="encoderSeesAllTokens"/>: the Table 5 "w/ [M]" ablation, where
    /// the encoder processes all L patches (mask tokens in place of the removed ones) instead of the visible ones.</summary>
    public static double Forward(MaeConfig c, double maskRatio, bool encoderSeesAllTokens = false)
    {
        long l = c.NumPatches;
        long encTokens = 1 + (encoderSeesAllTokens ? l : MaskedAutoencoder.LenKeep(l, maskRatio));
        long decTokens = 1 + l;
        double patchEmbed = 2.0 * l * c.PatchDim * c.EmbedDim;
        double encoder = c.Depth * Block(encTokens, c.EmbedDim, c.MlpHiddenDim);
        double decoderEmbed = 2.0 * encTokens * c.EmbedDim * c.DecoderEmbedDim;
        double decoder = c.DecoderDepth * Block(decTokens, c.DecoderEmbedDim, c.DecoderMlpHiddenDim);
        double decoderPred = 2.0 * decTokens * c.DecoderEmbedDim * c.PatchDim;
        return patchEmbed + encoder + decoderEmbed + decoder + decoderPred;
    }

    /// <summary>Training FLOPs per image-step: forward + backward ≈ 3 × forward.</summary>
    public static double TrainingStep(MaeConfig c, double maskRatio, bool encoderSeesAllTokens = false) =>
        3 * Forward(c, maskRatio, encoderSeesAllTokens);
}
