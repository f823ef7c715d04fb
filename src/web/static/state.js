/** Who is signed in (null: nobody). */
export const state = { user: null }
