namespace Mae.MLNet.Model;

/// <summary>How an image's tokens become one feature vector.</summary>
public enum MaePooling
{
    /// <summary>The cls token after the encoder's final norm.</summary>
    Cls,
    /// <summary>The mean of the patch tokens (cls excluded) after the encoder's final norm.</summary>
    Mean,
}
