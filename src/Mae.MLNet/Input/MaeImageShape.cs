namespace Mae.MLNet.Input;

/// <summary>Shape of one image: channels × height × width (CHW, as ML.NET's ExtractPixels gives it).</summary>
public readonly record struct MaeImageShape(int Channels, int Height, int Width)
{
    /// <summary>Number of floats in one image, C·H·W.</summary>
    public long Length => (long)Channels * Height * Width;

    public override string ToString() => $"{Channels}×{Height}×{Width} (C×H×W)";

    internal void Validate(string name)
    {
        if (Channels < 1 || Height < 1 || Width < 1)
            throw new ArgumentException($"{name}: every image dimension must be at least 1; got {this}.", name);
    }
}
